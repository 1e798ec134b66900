import gzip
import json
import time

import pytest

from esrgraph.config import InteractionsConfig, MetadataConfig, MetadataFields
from esrgraph.data.files import Source
from esrgraph.data.interactions import detect_format, read_interactions
from esrgraph.data.metadata import read_metadata
from tests.conftest import SHARED_DATA, TINY_ITEMS, TINY_SEQUENCES, needs_shared

EXPECTED = {u: [str(i) for i in s] for u, s in TINY_SEQUENCES.items()}


@pytest.mark.parametrize("fmt", ["json", "sequences", "inter", "csv"])
def test_interaction_formats_agree(tiny, fmt):
    sequences, used = read_interactions(InteractionsConfig(path=str(tiny[fmt]), format="auto"))
    assert used.format == fmt and used.guessed
    assert sequences == EXPECTED


def test_amazon_reviews_sorted_by_time(tiny):
    sequences, used = read_interactions(InteractionsConfig(path=str(tiny["reviews"])))
    assert used.format == "amazon-reviews"
    assert sequences == {u: [f"A{int(i):03d}" for i in s] for u, s in EXPECTED.items()}


def test_csv_ties_keep_file_order(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("item\tuser\ttimestamp\nb\tx\t5\na\tx\t5\nc\tx\t1\n")
    sequences, _ = read_interactions(InteractionsConfig(path=str(path)))
    assert sequences == {"x": ["c", "b", "a"]}


def test_csv_iso_dates_and_custom_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("who,what,when\nx,b,2020-01-02\nx,a,2020-01-01T10:00:00\n")
    cfg = InteractionsConfig(path=str(path), user_column="who", item_column="what", time_column="when")
    assert read_interactions(cfg)[0] == {"x": ["a", "b"]}


def test_iso_times_without_a_zone_are_read_as_utc_wherever_the_machine_is(tmp_path, monkeypatch):
    # 02:30 does not exist in New York that night (clocks jump from 2:00 to 3:00): read in the
    # machine's zone it would land after 03:10
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        path = tmp_path / "t.csv"
        path.write_text(
            "user,item,timestamp\nx,b,2020-03-08T03:10:00\nx,a,2020-03-08T02:30:00\nx,c,2020-03-08T02:50:00Z\n"
        )
        assert read_interactions(InteractionsConfig(path=str(path)))[0] == {"x": ["a", "c", "b"]}
    finally:
        monkeypatch.undo()
        time.tzset()


def test_gzip_detected_by_content_not_name(tmp_path, tiny):
    path = tmp_path / "plain-name.txt"
    path.write_bytes(gzip.compress(tiny["sequences"].read_bytes()))
    assert read_interactions(InteractionsConfig(path=str(path)))[0] == EXPECTED


def test_detect_inter_versus_sequences(tiny):
    inter, sequences = detect_format(Source(tiny["inter"])), detect_format(Source(tiny["sequences"]))
    assert inter.format == "inter" and inter.reason == "guessed from the content: no line holds more than two fields"
    assert (
        sequences.format == "sequences"
        and sequences.reason == "guessed from the content: line 1 holds more than two fields"
    )


@pytest.mark.parametrize(
    "fmt, text",
    [
        ("inter", "\nuser_id item_id\nx 1\nx 2\ny 1\n"),
        ("sequences", "UserID ItemIDs\nx 1 2\ny 1\n"),
    ],
)
def test_a_header_line_of_whitespace_formats_is_skipped(tmp_path, fmt, text, caplog):
    path = tmp_path / "h.txt"
    path.write_text(text)
    assert read_interactions(InteractionsConfig(path=str(path), format=fmt))[0] == {"x": ["1", "2"], "y": ["1"]}
    assert "skipped as a header" in caplog.text


def test_a_user_named_like_a_header_after_line_one_is_data(tmp_path):
    path = tmp_path / "h.txt"
    path.write_text("x 1\nuser item\n")
    assert read_interactions(InteractionsConfig(path=str(path), format="inter"))[0] == {"x": ["1"], "user": ["item"]}


def _meta(path, **kw):
    return read_metadata(MetadataConfig(path=str(path), **kw))


def test_metadata_json_object(tiny):
    records, stats = _meta(tiny["items_json"])
    assert stats["format"] == "json" and len(records) == len(TINY_ITEMS)
    assert records["1"] == {
        "title": "Red nail polish",
        "brand": "OPI",
        "price": "$5.99",
        "description": "Glossy red.",
        "categories": ["Beauty", "Makeup", "Nails"],
    }
    assert records["7"]["brand"] is None and records["6"]["price"] is None


def test_metadata_jsonl_with_list_categories(tiny):
    records, stats = _meta(tiny["items_jsonl"], key="asin", fields=MetadataFields(categories="category"))
    assert stats["format"] == "jsonl"
    assert records["A003"]["categories"] == ["Beauty", "Skin Care", "Face"]
    assert records["A003"]["brand"] == "L&#39;Oreal"  # unescaping is the consumers' job


def test_metadata_csv_with_path_separator(tiny):
    records, stats = _meta(
        tiny["items_csv"], key="item_id", category_separator="|", fields=MetadataFields(description=None)
    )
    assert stats["format"] == "csv"
    assert records["8"]["categories"] == ["Beauty", "Makeup", "Eyes"]
    assert records["7"]["brand"] is None  # empty cell = missing


def test_quoted_csv_cells_may_span_lines_and_tsv_quotes_are_plain_characters(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('item_id,title,brand\n1,"Great\nLipstick",Acme\n2,"Ruler, 12"" long",Co\n')
    records, _ = _meta(path, key="item_id", fields=MetadataFields(categories=None, price=None, description=None))
    assert records["1"]["title"] == "Great Lipstick" and records["2"]["title"] == 'Ruler, 12" long'
    path = tmp_path / "m.tsv"
    path.write_text('item_id\ttitle\tbrand\n1\t"Wow lipstick\tAcme\n2\tNice\tBobo\n3\tRuler 12" long\tCo\n')
    records, _ = _meta(path, key="item_id", fields=MetadataFields(categories=None, price=None, description=None))
    assert [records[k]["brand"] for k in "123"] == ["Acme", "Bobo", "Co"]
    assert records["1"]["title"] == '"Wow lipstick'
    path = tmp_path / "i.csv"
    path.write_text('user,item,timestamp,review\nu1,a,2,"good\nstuff"\nu1,b,1,fine\n')
    assert read_interactions(InteractionsConfig(path=str(path)))[0] == {"u1": ["b", "a"]}


def test_object_values_are_read_as_missing_and_counted(tmp_path, caplog):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"1": {"title": "a", "brand": {"name": "Acme"}}, "2": {"title": "b", "brand": "Bobo"}}))
    records, stats = _meta(path)
    assert records["1"]["brand"] is None and records["2"]["brand"] == "Bobo"
    assert stats["object_values_ignored"] == {"brand": 1}
    assert "1 records give brand (field 'brand') as an object" in caplog.text


def test_metadata_duplicate_keys_first_wins(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"asin": "A", "title": "first"}\n{"asin": "A", "title": "second"}\n')
    records, stats = _meta(path)
    assert records["A"]["title"] == "first" and stats["duplicate_keys"] == 1


def test_description_lists_are_joined(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps({"1": {"title": ["A", " b "], "description": ["x", "", "y"], "categories": [["P", "Q"]]}})
    )
    records, _ = _meta(path)
    assert records["1"]["title"] == "A b" and records["1"]["description"] == "x y"
    assert records["1"]["categories"] == ["P", "Q"]


def test_a_category_pattern_keeps_names_that_hold_the_separator(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"1": {"categories": "Industrial & Scientific,Tapes, Adhesives & Sealants,Duct Tape"}}))
    assert _meta(path)[0]["1"]["categories"] == [
        "Industrial & Scientific",
        "Tapes",
        "Adhesives & Sealants",
        "Duct Tape",
    ]
    records, _ = _meta(path, category_pattern=r",(?=\S)")
    assert records["1"]["categories"] == ["Industrial & Scientific", "Tapes, Adhesives & Sealants", "Duct Tape"]


def test_several_category_paths_keep_the_first_as_the_path_or_all_as_a_set(tmp_path, caplog):
    path = tmp_path / "m.json"
    paths = [["Beauty", "Makeup", "Nails"], ["Beauty", "Skin Care"]]
    path.write_text(json.dumps({"1": {"categories": paths}, "2": {"categories": [paths[1]]}}))
    records, stats = _meta(path)
    assert records["1"]["categories"] == ["Beauty", "Makeup", "Nails"]  # not one path through both
    assert records["2"]["categories"] == ["Beauty", "Skin Care"]
    assert stats["category_paths_dropped"] == 1 and "1 category paths beyond each item's first" in caplog.text
    records, stats = _meta(path, categories_are_path=False)
    assert records["1"]["categories"] == ["Beauty", "Makeup", "Nails", "Beauty", "Skin Care"]
    assert stats["category_paths_dropped"] == 0


# ------------------------------------------------------------------ real data


@needs_shared
def test_real_scientific():
    seqs, fmt = read_interactions(InteractionsConfig(path=str(SHARED_DATA / "amazon-scientific/interactions.json")))
    assert fmt.format == "json" and len(seqs) == 8317 and sum(map(len, seqs.values())) == 58492
    records, _ = _meta(SHARED_DATA / "amazon-scientific/items.json")
    assert len(records) == 4344
    assert sum(bool(r["brand"]) for r in records.values()) == 4332
    assert sum(bool(r["categories"]) for r in records.values()) == 4213
    assert records["0"]["categories"][0] == "Industrial & Scientific"


@needs_shared
def test_real_beauty():
    seqs, fmt = read_interactions(InteractionsConfig(path=str(SHARED_DATA / "amazon-beauty/sequences.txt")))
    assert fmt.format == "sequences" and len(seqs) == 22363 and sum(map(len, seqs.values())) == 198502
    records, _ = _meta(
        SHARED_DATA / "amazon-beauty/items.csv",
        key="item_id",
        category_separator="|",
        fields=MetadataFields(description=None),
    )
    assert len(records) == 12101
    assert sum(bool(r["title"]) for r in records.values()) == 12094
    assert sum(bool(r["price"]) for r in records.values()) == 11516


@needs_shared
def test_real_giftcards_raw():
    seqs, fmt = read_interactions(
        InteractionsConfig(path=str(SHARED_DATA / "amazon-giftcards-raw/Gift_Cards_5.json.gz"))
    )
    assert fmt.format == "amazon-reviews" and len(seqs) == 458 and sum(map(len, seqs.values())) == 2972
    records, stats = _meta(
        SHARED_DATA / "amazon-giftcards-raw/meta_Gift_Cards.json.gz", fields=MetadataFields(categories="category")
    )
    assert stats["format"] == "jsonl" and len(records) + stats["duplicate_keys"] == 1547
