"""The formats users meet: separators, encodings, typed headers, the Amazon 2014 and 2023 dumps;
the join offset check; category paths told from flat tag lists; formats named when guessed."""

import gzip
import json
import random
from pathlib import Path

import pytest

from cli.main import main
from esrgraph.config import InteractionsConfig, MetadataConfig, MetadataFields, load_config
from esrgraph.data.dataset import build_dataset, categories_are_path
from esrgraph.data.interactions import read_interactions
from esrgraph.data.metadata import detect_category_paths, read_metadata
from esrgraph.data.store import load_dataset
from esrgraph.errors import EsrError, InputError
from esrgraph.graph.io import load_sidecar
from esrgraph.pipeline import ensure
from esrgraph.runs import Run
from tests.conftest import as_flags, needs_shared

REPO = Path(__file__).resolve().parents[1]


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def prepare(tmp_path: Path, interactions: Path, metadata: Path | None, *extra: str):
    """``esr prepare`` on the files; returns the exit status, stdout, stderr and the run folder."""
    root = tmp_path / "runs"
    overrides = [
        f"dataset.interactions.path={interactions}",
        f"dataset.metadata.path={metadata}" if metadata else "dataset.metadata.path=null",
        f"run.root={root}",
        "run.name=r",
        *extra,
    ]
    return main(["prepare", *as_flags(overrides)]), root / "r"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("esr: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def stats_of(run: Path) -> dict:
    return json.loads((run / "dataset" / "stats.json").read_text())


def meta_of(run: Path) -> list:
    return [json.loads(line) for line in (run / "dataset" / "item_meta.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ join offset

# Ten users over items 1..12 (1-based); each user's items walk upwards from a start.
ONE_BASED = "".join(f"u{u} {' '.join(str((u + k) % 12 + 1) for k in range(4))}\n" for u in range(10))
TITLES = {i: f"title {i}" for i in range(12)}  # keyed 0..11: item 1 is "title 0"


def zero_based_metadata(folder: Path) -> Path:
    return write(folder, "items.json", json.dumps({str(i): {"title": t} for i, t in TITLES.items()}))


def test_a_one_based_file_against_zero_based_metadata_stops_with_the_offset_that_fixes_it(tmp_path, capsys):
    seqs, meta = write(tmp_path, "seq.txt", ONE_BASED), zero_based_metadata(tmp_path)
    rc, run = prepare(tmp_path, seqs, meta)
    err = one_line_error(capsys)
    assert rc == 2 and not run.exists()
    assert "items.json: item ids and metadata keys look shifted: with dataset.join.offset=-1, 12 of the 12" in err
    assert "with the configured offset 0, 11" in err
    assert "set dataset.join.offset=-1, or dataset.join.check_offset=false to keep offset 0" in err

    rc, run = prepare(tmp_path, seqs, meta, "dataset.join.offset=-1")
    assert rc == 0 and stats_of(run)["join"]["coverage"] == 1.0
    assert [m["title"] for m in meta_of(run)] == [f"title {i}" for i in range(12)]  # item i gets key i - 1

    rc, run = prepare(tmp_path, seqs, meta, "dataset.join.offset=0", "dataset.join.check_offset=false", "run.name=k")
    assert rc == 0
    kept = tmp_path / "runs" / "k"
    assert stats_of(kept)["join"]["items_with_metadata"] == 11 and meta_of(kept)[0]["title"] == "title 1"


def test_a_correct_join_passes_the_offset_check_untouched(tiny_config):
    ds = build_dataset(tiny_config().dataset)
    assert ds.stats["join"]["offset"] == 0 and ds.stats["join"]["coverage"] == 1.0


def _cfg(seqs: Path, meta: Path, *extra: str):
    return load_config(None, [f"dataset.interactions.path={seqs}", f"dataset.metadata.path={meta}", *extra]).dataset


def test_sparse_ids_shifted_by_one_are_caught_by_the_share_they_gain(tmp_path):
    # even item ids 2..60; metadata keyed by id - 1 (odd keys) for most, by id for a few
    lines = [f"u{u} " + " ".join(str(2 * ((u * 3 + k) % 30 + 1)) for k in range(3)) + "\n" for u in range(30)]
    seqs = write(tmp_path, "seq.txt", "".join(lines))
    keys = [2 * i + 1 for i in range(20)] + [2 * i for i in range(26, 31)]  # 20 shifted, 5 aligned
    meta = write(tmp_path, "m.json", json.dumps({str(k): {"title": f"t{k}"} for k in keys}))
    with pytest.raises(InputError, match=r"offset=-1, 20 of the 30 .* configured offset 0, 5 "):
        build_dataset(_cfg(seqs, meta))


def test_a_gap_in_dense_metadata_is_no_reason_to_shift(tmp_path):
    # keys 0..200 but 57; items 1..100 but 56 and 58: offset +1 would join all, yet item 57
    # simply has no record, inside the range of keys
    items = [i for i in range(1, 101) if i not in (56, 58)]
    seqs = write(tmp_path, "seq.txt", "".join(f"u{n} {' '.join(map(str, items[n::20]))}\n" for n in range(20)))
    meta = write(tmp_path, "m.json", json.dumps({str(k): {"title": f"t{k}"} for k in range(201) if k != 57}))
    ds = build_dataset(_cfg(seqs, meta))
    assert ds.stats["join"]["items_with_metadata"] == 97 and ds.stats["join"]["items_without_metadata"] == 1


# ------------------------------------------------------------------ category paths or tags

TAGS = ["Pizza", "Italian", "Restaurants", "Bars", "Nightlife", "Coffee", "Cafes", "Bakeries", "Food", "Burgers"]


def tag_metadata(folder: Path, shuffled: bool) -> Path:
    """Forty items with 2-4 tags each, in random order per item (or sorted, as genre lists are)."""
    rng = random.Random(1)
    records = {}
    for i in range(1, 41):
        tags = rng.sample(TAGS, rng.randint(2, 4))
        records[str(i)] = {"title": f"place {i}", "categories": ", ".join(tags if shuffled else sorted(tags))}
    return write(folder, "tags.json", json.dumps(records))


PLACES = "".join(f"u{u} {' '.join(str((u * 7 + k) % 40 + 1) for k in range(5))}\n" for u in range(24))


def test_tags_in_any_order_read_as_flat_tags_and_the_summary_says_why(tmp_path, capsys):
    rc, run = prepare(tmp_path, write(tmp_path, "s.txt", PLACES), tag_metadata(tmp_path, shuffled=True))
    out = capsys.readouterr().out
    reading = stats_of(run)["category_reading"]
    assert rc == 0 and reading["path"] is False and reading["setting"] == "auto"
    assert "appear in both orders, as tags do" in reading["reason"]
    assert "categories       flat tags (detected: " in out


def test_sorted_tags_read_as_flat_tags_though_every_pair_keeps_one_order():
    rng = random.Random(0)
    genres = ["Action", "Adventure", "Comedy", "Crime", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "War"]
    lists = [sorted(rng.sample(genres, rng.randint(2, 4))) for _ in range(300)]
    path, reason = detect_category_paths(lists)
    assert path is False and "as sorted tags do" in reason


def test_paths_read_as_paths_and_an_explicit_setting_wins(tiny_config):
    ds = build_dataset(tiny_config().dataset)
    assert ds.stats["category_reading"]["path"] is True
    assert ds.stats["category_reading"]["reason"].startswith("detected: 100.0% of ")
    forced = build_dataset(tiny_config("dataset.metadata.categories_are_path=false").dataset)
    assert forced.stats["category_reading"] == {
        "path": False,
        "setting": False,
        "reason": "set by dataset.metadata.categories_are_path",
    }


def test_one_category_per_item_is_no_path():
    assert detect_category_paths([["Books"], ["Toys"], []]) == (
        False,
        "no item has two or more categories, so there is no path to follow",
    )


def test_later_stages_use_the_detected_reading(tmp_path, monkeypatch):
    overrides = [
        f"dataset.interactions.path={write(tmp_path, 's.txt', PLACES)}",
        f"dataset.metadata.path={tag_metadata(tmp_path, shuffled=True)}",
        f"run.root={tmp_path / 'runs'}",
        "graph.min_count.category=1",
    ]
    run = Run(load_config(None, overrides))
    sidecar = load_sidecar(ensure(run, "graph"), num_items=40)
    assert sidecar["config"]["categories_are_path"] is False
    assert set(sidecar["vocab"]["category"]["values"]) == {t.lower() for t in TAGS}  # one node a tag, no paths
    ds = load_dataset(run.dir / "dataset")
    assert categories_are_path(ds, "auto") is False and categories_are_path(ds, True) is True

    import esrgraph.stages.embed as embed_stage

    seen = []

    def capture(ds, parts, as_path, max_tokens):
        seen.append(as_path)
        raise EsrError("stop here")

    monkeypatch.setattr(embed_stage, "item_texts", capture)
    with pytest.raises(EsrError, match="stop here"):
        ensure(run, "embed")
    assert seen == [False]


@pytest.mark.parametrize(
    "name",
    [
        "amazon-scientific",  # the bundled data
        pytest.param("amazon-beauty", marks=needs_shared),
        pytest.param("amazon-giftcards-raw", marks=needs_shared),
    ],
)
def test_real_category_paths_are_detected_as_paths(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml", ["dataset.metadata.categories_are_path=auto"])
    _, stats = read_metadata(cfg.dataset.metadata)
    assert stats["category_reading"]["path"] is True, stats["category_reading"]
    assert stats["category_reading"]["reason"].startswith("detected: ")


# ------------------------------------------------------------------ separators and encodings

RATINGS = [(1, 10, 5, 300), (1, 11, 3, 100), (1, 12, 4, 200), (2, 10, 4, 50), (2, 13, 2, 60), (2, 11, 1, 40)]


def test_a_double_colon_table_without_header_is_found_and_sorted_by_its_last_field(tmp_path):
    path = write(tmp_path, "ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in RATINGS))
    sequences, reading = read_interactions(InteractionsConfig(path=str(path)))
    assert sequences == {"1": ["11", "12", "10"], "2": ["11", "10", "13"]}
    assert reading.format == "csv" and reading.separator == "::"
    assert reading.reason == "guessed from the content: 6 of the first 6 lines split into 4 fields at '::'"
    explicit = InteractionsConfig(path=str(path), format="csv", separator="::")
    assert read_interactions(explicit)[0] == sequences


def test_a_separator_setting_reads_a_semicolon_table_with_header(tmp_path):
    path = write(tmp_path, "r.txt", "userId;movieId;rating;timestamp\n1;10;5;3\n1;11;4;1\n")
    sequences, reading = read_interactions(InteractionsConfig(path=str(path), separator=";"))
    assert sequences == {"1": ["11", "10"]} and reading.reason == "guessed from dataset.interactions.separator ';'"


def test_a_separator_setting_applies_to_sequences_too(tmp_path):
    path = write(tmp_path, "s.txt", "u 1,1,2, 3,\nu2,3,1\n")
    cfg = InteractionsConfig(path=str(path), format="sequences", separator=",")
    assert read_interactions(cfg)[0] == {"u 1": ["1", "2", "3"], "u2": ["3", "1"]}


def test_latin1_files_read_with_the_encoding_setting(tmp_path):
    path = write(tmp_path, "s.txt", "u1 1 2 3\ncafé 1 2 3\n".encode("latin-1"))
    with pytest.raises(InputError) as err:
        read_interactions(InteractionsConfig(path=str(path)))
    assert str(err.value) == (
        f"{path}, line 2: not UTF-8 text (byte 0xe9 cannot be decoded); "
        "if the file uses another encoding, set dataset.interactions.encoding (e.g. latin-1)"
    )
    assert read_interactions(InteractionsConfig(path=str(path), encoding="latin-1"))[0]["café"] == ["1", "2", "3"]
    movies = write(tmp_path, "movies.dat", "1::Amélie (2001)::Comedy|Romance\n2::Heat (1995)::Action|Crime\n")
    movies.write_bytes(movies.read_text().encode("latin-1"))
    cfg = MetadataConfig(
        path=str(movies),
        separator="::",
        columns=["item_id", "title", "genres"],
        encoding="latin-1",
        fields=MetadataFields(categories="genres"),
        category_separator="|",
    )
    records, stats = read_metadata(cfg)
    assert records["1"]["title"] == "Amélie (2001)" and records["2"]["categories"] == ["Action", "Crime"]
    assert stats["format"] == "csv" and stats["fields_absent"] == {
        "brand": "brand",
        "price": "price",
        "description": "description",
    }


def test_utf16_files_decode_as_a_whole(tmp_path):
    path = write(tmp_path, "s.txt", "u1 1 2 3\nu2 3 2 1\n".encode("utf-16"))
    assert read_interactions(InteractionsConfig(path=str(path), encoding="utf-16"))[0] == {
        "u1": ["1", "2", "3"],
        "u2": ["3", "2", "1"],
    }


# ------------------------------------------------------------------ typed headers

ATOMIC_INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\nA\tx\t5\t20\nA\ty\t4\t10\nB\tx\t3\t5\n"
ATOMIC_ITEM = (
    "item_id:token\ttitle:token_seq\tbrand:token\tcategories:token_seq\nx\tRed lipstick\tAcme\tBeauty,Makeup\n"
)


def test_typed_headers_are_read_without_naming_columns(tmp_path):
    sequences, reading = read_interactions(InteractionsConfig(path=str(write(tmp_path, "d.inter", ATOMIC_INTER))))
    assert sequences == {"A": ["y", "x"], "B": ["x"]}
    assert reading.format == "tsv" and reading.seen.startswith("the typed header 'user_id:token")
    records, stats = read_metadata(MetadataConfig(path=str(write(tmp_path, "d.item", ATOMIC_ITEM))))
    assert stats["format"] == "tsv" and records["x"]["title"] == "Red lipstick" and records["x"]["brand"] == "Acme"
    assert records["x"]["categories"] == ["Beauty", "Makeup"]


def test_headers_use_common_column_names(tmp_path):
    path = write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n7,2,5,9\n7,1,5,8\n")
    assert read_interactions(InteractionsConfig(path=str(path)))[0] == {"7": ["1", "2"]}


# ------------------------------------------------------------------ Amazon dumps

AMAZON_2014_META = (
    "{'asin': 'A1', 'title': \"L'Oreal cream\", 'price': 5.99, "
    "'categories': [['Beauty', 'Skin Care', 'Face'], ['Beauty', 'Other']], 'brand': 'LOreal'}\n"
    "{'asin': 'A2', 'title': 'Lip balm', 'categories': [['Beauty', 'Makeup', 'Lips']], 'salesRank': {'Beauty': 3}}\n"
)


def test_amazon_2014_metadata_reads_python_literal_lines(tmp_path):
    path = write(tmp_path, "meta_Beauty.json.gz", gzip.compress(AMAZON_2014_META.encode()))
    records, stats = read_metadata(MetadataConfig(path=str(path)))
    assert stats["format"] == "amazon-2014" and "Python literal object" in stats["format_reason"]
    assert records["A1"] == {
        "title": "L'Oreal cream",
        "brand": "LOreal",
        "price": "5.99",
        "description": None,
        "categories": ["Beauty", "Skin Care", "Face"],
    }
    assert stats["category_paths_dropped"] == 1
    assert stats["category_reading"]["path"] is True and "lists of paths" in stats["category_reading"]["reason"]


def test_amazon_2014_lines_are_never_evaluated(tmp_path, capsys):
    marker = tmp_path / "ran"
    bad = AMAZON_2014_META + f"{{'asin': 'A3', 'title': __import__('os').system('touch {marker}')}}\n"
    meta = write(tmp_path, "meta.json", bad)
    rc, run = prepare(tmp_path, write(tmp_path, "s.txt", "u1 A1 A2 A1\n"), meta)
    err = one_line_error(capsys)
    assert rc == 2 and not run.exists() and not marker.exists()
    assert "meta.json, line 3: not a Python literal object (malformed node or string" in err
    assert "(read as amazon-2014, guessed from the first line, a Python literal object" in err


REVIEWS_2023 = [
    {"rating": 5.0, "user_id": "U1", "asin": "C1", "parent_asin": "P1", "timestamp": 1588687728923},
    {"rating": 4.0, "user_id": "U1", "asin": "C2", "parent_asin": "P2", "timestamp": 1588615855070},
    {"rating": 3.0, "user_id": "U1", "asin": "C3", "parent_asin": "P3", "timestamp": 1589000000000},
    {"rating": 5.0, "user_id": "U2", "asin": "C2", "parent_asin": "P2", "timestamp": 1500000000000},
    {"rating": 1.0, "user_id": "U2", "asin": "C1", "parent_asin": "P1", "timestamp": 1400000000000},
    {"rating": 2.0, "user_id": "U2", "asin": "C3", "parent_asin": "P3", "timestamp": 1600000000000},
]
META_2023 = [
    {
        "main_category": "All Beauty",
        "title": "Hair spray",
        "store": "Acme",
        "categories": ["Beauty", "Hair Care", "Styling"],
        "price": 12.5,
        "description": ["Strong hold.", "Lasts all day."],
        "parent_asin": "P1",
    },
    {"title": "Comb", "store": None, "categories": [], "price": None, "description": [], "parent_asin": "P2"},
    {"title": "Gel", "store": "Acme", "categories": ["Beauty", "Hair Care"], "price": 3, "parent_asin": "P3"},
]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_amazon_2023_reviews_and_metadata_are_detected_and_joined(tmp_path, capsys):
    reviews = write(tmp_path, "All_Beauty.jsonl", jsonl(REVIEWS_2023))
    meta = write(tmp_path, "meta_All_Beauty.jsonl.gz", gzip.compress(jsonl(META_2023).encode()))
    rc, run = prepare(tmp_path, reviews, meta)
    out = capsys.readouterr().out
    assert rc == 0
    assert "interactions     read as amazon-reviews-2023 (guessed from the file name ending .jsonl" in out
    assert "metadata         read as amazon-2023 (guessed from the first line, a JSON object with parent_asin)" in out
    ids = json.loads((run / "dataset" / "ids.json").read_text())
    assert ids["items"] == ["P1", "P2", "P3"]  # parent_asin, not the variant asin
    items = meta_of(run)
    assert items[0] == {
        "title": "Hair spray",
        "brand": "Acme",  # the 2023 dumps' store
        "price": "12.5",
        "description": "Strong hold. Lasts all day.",
        "categories": ["Beauty", "Hair Care", "Styling"],
    }
    assert items[1]["brand"] is None and items[1]["categories"] == [] and items[2]["price"] == "3"
    sequences, reading = read_interactions(InteractionsConfig(path=str(reviews)))
    assert sequences == {"U1": ["P2", "P1", "P3"], "U2": ["P1", "P2", "P3"]}  # millisecond times, sorted


# ------------------------------------------------------------------ the guess is named


def test_the_guessed_format_is_named_in_the_summary_and_in_read_errors(tmp_path, capsys):
    rc, _ = prepare(tmp_path, write(tmp_path, "seq.txt", "u1 1 2 3\nu2 2 3 1\n"), None)
    assert rc == 0
    out = capsys.readouterr().out
    assert "interactions     read as sequences (guessed from the content: line 1 holds more than two fields)" in out
    rc, run = prepare(tmp_path, write(tmp_path, "bad.txt", "u1 1 2 3\nu2 2 3 1\nu1 4 5\n"), None, "run.name=b")
    err = one_line_error(capsys)
    assert rc == 2 and not (tmp_path / "runs" / "b").exists()
    assert err.strip().endswith(
        "bad.txt, line 3: user 'u1' appears on more than one line (read as sequences, guessed from the content: "
        "line 1 holds more than two fields; set dataset.interactions.format if that is wrong)"
    )
    rc, _ = prepare(
        tmp_path, write(tmp_path, "b2.txt", "u1 1 2 3\nu1 4 5\n"), None, "dataset.interactions.format=sequences"
    )
    assert rc == 2 and "(read as" not in one_line_error(capsys)  # a format that was set needs no explanation


# ------------------------------------------------------------------ missing fields, one rule


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_field_the_file_lacks_under_its_default_name_is_missing_for_every_item(tmp_path, fmt, capsys):
    rows = {"1": {"title": "a", "brand": "x"}, "2": {"title": "b", "brand": ""}, "3": {"title": "c", "brand": "y"}}
    if fmt == "csv":
        meta = write(
            tmp_path,
            "m.csv",
            "item_id,title,brand\n" + "".join(f"{k},{v['title']},{v['brand']}\n" for k, v in rows.items()),
        )
    else:
        meta = write(tmp_path, "m.json", json.dumps(rows))
    rc, run = prepare(tmp_path, write(tmp_path, "s.txt", "u1 1 2 3\nu2 3 2 1\n"), meta)
    assert rc == 0
    stats = stats_of(run)
    assert stats["metadata"]["fields_absent"] == {
        "categories": "categories",
        "price": "price",
        "description": "description",
    }
    assert [m["brand"] for m in meta_of(run)] == ["x", None, "y"]
    assert "fields absent    categories, price, description" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_field_name_set_in_the_config_that_no_record_has_is_an_error(tmp_path, fmt, capsys):
    if fmt == "csv":
        meta = write(tmp_path, "m.csv", "item_id,title,brand\n1,a,x\n2,b,y\n")
    else:
        meta = write(tmp_path, "m.json", json.dumps({"1": {"title": "a", "brand": "x"}, "2": {"title": "b"}}))
    rc, run = prepare(tmp_path, write(tmp_path, "s.txt", "u1 1 2 1\n"), meta, "dataset.metadata.fields.brand=brnd")
    err = one_line_error(capsys)
    assert rc == 2 and not run.exists()
    assert (
        f"m.{fmt}: no record has the field 'brnd' named by dataset.metadata.fields.brand (did you mean 'brand'?)" in err
    )
