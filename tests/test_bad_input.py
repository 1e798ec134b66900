"""Bad input: one line naming the file and line or key, exit status 2, nothing left behind."""

import gzip
import json
import random

import pytest

from cli.main import main


def run_prepare(tmp_path, interactions, metadata=None, *extra):
    root = tmp_path / "runs"
    args = ["prepare", "-o", f"dataset.interactions.path={interactions}", "-o", f"run.root={root}", "-o", "run.name=r"]
    args += ["-o", f"dataset.metadata.path={metadata}" if metadata else "dataset.metadata.path=null"]
    for e in extra:
        args += ["-o", e]
    return main(args), root


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _damaged_gzip() -> bytes:
    """A gzip stream whose compressed middle is corrupted (the trailer check never comes)."""
    rng = random.Random(0)
    data = "".join(f"u{rng.randrange(300)} {rng.randrange(5000)}\n" for _ in range(20000)).encode()
    damaged = bytearray(gzip.compress(data, mtime=0))
    for i in range(200, 260):
        damaged[i] ^= 0x5A
    return bytes(damaged)


@pytest.mark.parametrize(
    "name, content, fmt, expected",
    [
        (
            "inter.txt",
            "u1 1\nu1 2\nu1 3 4 5\n",
            "inter",
            "inter.txt, line 3: expected 'user item' (2 fields), got 4 fields",
        ),
        ("seq.txt", "u1 1 2 3\nu2\n", "sequences", "seq.txt, line 2: expected 'user item item ...'"),
        ("i.json", '{"u1": [1, 2, 3],\n "u2": [4, 5 6]}', "json", "i.json, line 2: malformed JSON"),
        ("i.json", '{"u1": [1, 2, 3], "u2": 7}', "json", "i.json, key 'u2': expected a list of items, got int"),
        ("i.json", '{"u1": [1, 2.5, 3]}', "json", "i.json, key 'u1': item id must be a string or integer, got 2.5"),
        ("i.json", "[1, 2]", "json", "i.json: expected a JSON object mapping each user to a list of items"),
        ("i.csv", "user,item\nu1,1\n", "csv", "i.csv, line 1: missing column(s) ['timestamp']"),
        (
            "i.csv",
            "user,item,timestamp\nu1,1,5\nu1,2,yesterday\n",
            "csv",
            "i.csv, line 3: timestamp 'yesterday' is not a number or an ISO date",
        ),
        (
            "i.csv",
            "user,item,timestamp\nu1,1,5\nu1,2\n",
            "csv",
            "i.csv, line 3: expected 3 fields as in the header, got 2",
        ),
        ("empty.txt", "\n\n", "auto", "empty.txt: the file is empty"),
        ("latin.txt", b"u1 1 2 3\nu2 caf\xe9 1 2\n", "auto", "latin.txt, line 2: not UTF-8 text"),
        (
            "r.json.gz",
            gzip.compress(b'{"reviewerID": "a", "asin": "x", "unixReviewTime": 1}\n{"reviewerID": "a"}\n'),
            "amazon-reviews",
            "r.json.gz, line 2: missing field(s) ['asin', 'unixReviewTime']",
        ),
        (
            "r.jsonl",
            '{"reviewerID": "a", "asin": "x", "unixReviewTime": 1}\nnot json\n',
            "amazon-reviews",
            "r.jsonl, line 2: malformed JSON",
        ),
        ("few.txt", "u1 1 2\nu2 3\n", "sequences", "no user has at least 3 interactions"),
        (
            "i.csv",
            "user,item,item,timestamp\nu1,1,2,5\n",
            "csv",
            "i.csv, line 1: column(s) ['item'] appear more than once",
        ),
        (
            "dup.json",
            '{"u0": [1, 2, 3], "u1": [1, 2, 3], "u0": [4, 5, 6]}',
            "json",
            "dup.json, key 'u0': user appears more than once",
        ),
        ("deep.json", "[" * 100000 + "]" * 100000, "json", "deep.json: malformed JSON (nested too deeply to read)"),
        (
            "r.jsonl",
            '{"reviewerID": "a", "asin": "x", "unixReviewTime": 1' + "0" * 400 + "}\n",
            "amazon-reviews",
            "r.jsonl, line 1: unixReviewTime 1000",
        ),
        (
            "r.jsonl",
            '{"reviewerID": "a", "asin": "x", "unixReviewTime": "not a time"}\n',
            "amazon-reviews",
            "r.jsonl, line 1: unixReviewTime 'not a time' is not a number or an ISO date",
        ),
        (
            "broken.txt.gz",
            _damaged_gzip(),
            "inter",
            "broken.txt.gz: cannot read the file (Error -3 while decompressing",
        ),
        (
            "latin.txt",
            b"u1 1 2 3\nu2 caf\xe9 1 2\n",
            "sequences",
            "latin.txt, line 2: not UTF-8 text (byte 0xe9 cannot be decoded); "
            "if the file uses another encoding, set dataset.interactions.encoding (e.g. latin-1)",
        ),
        (
            "d.inter",
            "user_id:token\titem_id:token\nA\tx\n",
            "auto",
            "d.inter, line 1: missing column(s) ['timestamp']; the header has ['user_id', 'item_id'] "
            "(set dataset.interactions.time_column) (read as tsv, guessed from the typed header",
        ),
        (
            "ratings.dat",
            "".join(f"1::{i}::5::{i}\n" for i in range(20)) + "2::7::5\n",
            "auto",
            "ratings.dat, line 21: expected 4 fields as on the first line, got 3 (read as csv, guessed from the "
            "content: 20 of the first 21 lines split into 4 fields at '::'",
        ),
        (
            "r.csv",
            "who,what,when\nu1,a,1\n",
            "auto",
            "r.csv, line 1: missing column(s) ['user', 'item', 'timestamp']; the header has ['who', 'what', 'when'] "
            "(set dataset.interactions.user_column, dataset.interactions.item_column, "
            "dataset.interactions.time_column)",
        ),
        (
            "nul.txt",
            b"u1 1 2 3\nu\x002 1 2 3\n",
            "sequences",
            "nul.txt, line 2: user id 'u\\x002' holds a control character (U+0000); ids must be printable",
        ),
        (
            "nul.inter",
            b"u1 1\nu1 2\x00\n",
            "inter",
            "nul.inter, line 2: item id '2\\x00' holds a control character (U+0000)",
        ),
        ("bel.csv", "user,item,timestamp\nu1,1\x07,3\n", "csv", "bel.csv, line 2: item id '1\\x07' holds a control"),
        (
            "r.jsonl",
            '{"reviewerID": "a", "asin": "x", "unixReviewTime": 1}\n{"reviewerID": "a\\u0000", "asin": "y", '
            '"unixReviewTime": 2}\n',
            "amazon-reviews",
            "r.jsonl, line 2: user id 'a\\x00' holds a control character (U+0000)",
        ),
        ("c.json", '{"u1": [1, 2, 3], "u\\u001b": [1]}', "json", "c.json, key 'u\\x1b': user id 'u\\x1b' holds a"),
    ],
)
def test_bad_interactions(tmp_path, capsys, name, content, fmt, expected):
    path = write(tmp_path, name, content)
    rc, root = run_prepare(tmp_path, path, None, f"dataset.interactions.format={fmt}")
    err = capsys.readouterr().err
    assert rc == 2
    assert expected in err
    assert err.startswith("esr: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (root / "r").exists()  # no stage output, temporary folder or empty run folder


GOOD = "u1 1 2 3\nu2 2 3 1\n"


@pytest.mark.parametrize(
    "name, content, extra, expected",
    [
        (
            "m.json",
            '{"1": {"title": "a"}, "2": "oops"}',
            [],
            "m.json, key '2': expected an object of item fields, got str",
        ),
        ("m.json", '{"1": {"title": "a"},, }', [], "m.json, line 1: malformed JSON"),
        (
            "m.jsonl",
            '{"asin": "1"}\n{"title": "no id"}\n',
            ["dataset.metadata.key=asin"],
            "m.jsonl, line 2: missing id field 'asin'",
        ),
        (
            "m.csv",
            "item_id,title\n1,a\n2\n",
            [
                "dataset.metadata.key=item_id",
                "dataset.metadata.fields.brand=null",
                "dataset.metadata.fields.price=null",
                "dataset.metadata.fields.categories=null",
                "dataset.metadata.fields.description=null",
            ],
            "m.csv, line 3: expected 2 fields",
        ),
        ("m.csv", "id,title\n1,a\n", ["dataset.metadata.key=item_id"], "m.csv, line 1: missing id column 'item_id'"),
        ("m.json", b'{"1": {"title": "\xff"}}', [], "m.json, line 1: not UTF-8 text"),
        ("m.json", "", [], "m.json: the file is empty"),
        (
            "m.csv",
            'item_id,title\n1,"open quote\n2,b\n',
            [
                "dataset.metadata.key=item_id",
                "dataset.metadata.fields.brand=null",
                "dataset.metadata.fields.price=null",
                "dataset.metadata.fields.categories=null",
                "dataset.metadata.fields.description=null",
            ],
            "m.csv, line 2: malformed CSV row (unexpected end of data)",
        ),
        (
            "m.json",
            b'{"1": {"title": "caf\xe9"}}',
            [],
            "m.json, line 1: not UTF-8 text (byte 0xe9 cannot be decoded); "
            "if the file uses another encoding, set dataset.metadata.encoding (e.g. latin-1)",
        ),
        ("m.json", "{}", ["dataset.metadata.encoding=klingon"], "dataset.metadata.encoding: 'klingon' is not a known"),
        (
            "meta.json",
            "{'asin': '1', 'title': 'a'}\n{'asin': '2', 'title': \n",
            [],
            "meta.json, line 2: not a Python literal object (",
        ),
        (
            "meta.json",
            "{'asin': '1', 'title': 'a'}\n['not', 'an', 'object']\n",
            [],
            "meta.json, line 2: expected an object ({...}) on each line, got list",
        ),
        (
            "movies.dat",
            "1::A::x\n2::B\n",
            ['dataset.metadata.separator="::"', "dataset.metadata.columns=[item_id,title,categories]"],
            "movies.dat, line 2: expected 3 fields as named in dataset.metadata.columns, got 2 (read as csv, "
            "guessed from dataset.metadata.separator being set",
        ),
        (
            "movies.dat",
            "1::A::x\n",
            ['dataset.metadata.separator="::"', "dataset.metadata.columns=[item_id,title,title]"],
            "dataset.metadata.columns: ['item_id', 'title', 'title'] must name each column once",
        ),
        # ids follow the interactions' rule: printable, non-empty, a string or integer
        (
            "m.json",
            '{"1": {"title": "a"}, "2\\u0000": {"title": "b"}}',
            [],
            "m.json, key '2\\x00': item id '2\\x00' holds a control character (U+0000); ids must be printable",
        ),
        (
            "m.jsonl",
            '{"asin": "1"}\n{"asin": "x\\u0007y"}\n',
            ["dataset.metadata.key=asin"],
            "m.jsonl, line 2: item id 'x\\x07y' holds a control character (U+0007)",
        ),
        (
            "m.jsonl",
            '{"asin": "1"}\n{"asin": [2]}\n',
            ["dataset.metadata.key=asin"],
            "m.jsonl, line 2: item id must be a string or integer, got [2]",
        ),
        ("m.json", '{"1": {"title": "a"}, " ": {"title": "b"}}', [], "m.json, key ' ': empty item id"),
    ],
)
def test_bad_metadata(tmp_path, capsys, name, content, extra, expected):
    interactions = write(tmp_path, "seq.txt", GOOD)
    path = write(tmp_path, name, content)
    rc, root = run_prepare(tmp_path, interactions, path, *extra)
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and err.count("\n") == 1
    assert not (root / "r").exists()


def test_missing_file_and_missing_config(tmp_path, capsys):
    rc, _ = run_prepare(tmp_path, tmp_path / "nope.txt")
    assert rc == 2 and "nope.txt: file not found" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: config file not found" in capsys.readouterr().err


def test_links_that_loop_or_lead_nowhere_are_named_as_such(tmp_path, capsys):
    """Not "file not found": the name is there, what it points to is not."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone.txt")
    rc, _ = run_prepare(tmp_path, tmp_path / "a")
    err = capsys.readouterr().err
    assert (
        rc == 2 and err == f"esr: error: {tmp_path / 'a'}: a symbolic link loop (too many levels of symbolic links)\n"
    )
    rc, _ = run_prepare(tmp_path, tmp_path / "dangling")
    err = capsys.readouterr().err
    assert rc == 2 and f"dangling: a symbolic link to {tmp_path / 'gone.txt'}, which does not exist" in err
    assert main(["prepare", str(tmp_path / "a")]) == 2  # a config file that loops, resolved before it is read
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a: a symbolic link loop" in err


def test_a_json_file_whose_values_are_not_lists_is_told_so(tmp_path, capsys):
    """One line that looks like neither a users-to-lists mapping nor a review: read as the mapping it is
    meant to be, whose reader names the key, not as a review missing reviewerID and asin."""
    path = write(tmp_path, "i.json", '{"u1": "1 2 3", "u2": 7}\n')
    rc, _ = run_prepare(tmp_path, path)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "reviewerID" not in err
    assert "i.json, key 'u1': expected a list of items, got str (read as json, guessed from" in err
    reviews = write(tmp_path, "r.json", '{"reviewerID": "a", "asin": "x", "unixReviewTime": 1}\n{"reviewerID": "a"}\n')
    rc, _ = run_prepare(tmp_path, reviews)
    assert rc == 2 and "r.json, line 2: missing field(s) ['asin', 'unixReviewTime']" in capsys.readouterr().err


def test_good_input_writes_the_stage(tmp_path, capsys):
    rc, root = run_prepare(tmp_path, write(tmp_path, "seq.txt", GOOD))
    assert rc == 0 and (root / "r" / "dataset" / "manifest.json").is_file()
    manifest = json.loads((root / "r" / "dataset" / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"dataset.npz", "ids.json", "item_meta.jsonl", "stats.json"}
    assert "users" in capsys.readouterr().out


def test_integer_keys_name_the_file_and_the_offending_id(tmp_path, capsys):
    interactions = write(tmp_path, "seq.txt", "u1 1 2 3\nu2 3 x7 8\n")
    rc, _ = run_prepare(tmp_path, interactions, None, "dataset.join.key_type=int")
    assert rc == 2 and "seq.txt: user 'u2': item id 'x7' is not an integer" in capsys.readouterr().err
    metadata = write(tmp_path, "m.json", '{"1": {"title": "a"}, "four": {"title": "b"}}')
    rc, _ = run_prepare(tmp_path, write(tmp_path, "ok.txt", GOOD), metadata, "dataset.join.key_type=int")
    assert rc == 2 and "m.json: metadata key 'four' is not an integer" in capsys.readouterr().err


def test_ids_that_only_look_numeric_are_strings(tmp_path):
    # '+-3' and superscript digits pass a naive digit test but not int(): they must not be read as integers
    rc, root = run_prepare(tmp_path, write(tmp_path, "seq.txt", "1 1 2 3\n2 1 2 3\n+-3 1 \u00b2 3\n"))
    assert rc == 0
    ids = json.loads((root / "r" / "dataset" / "ids.json").read_text())
    assert sorted(ids["users"]) == ["+-3", "1", "2"] and "\u00b2" in ids["items"]


def test_a_join_that_matches_nothing_warns(tmp_path, caplog):
    metadata = write(tmp_path, "m.json", '{"zz1": {"title": "a"}, "zz2": {"title": "b"}}')
    rc, _ = run_prepare(tmp_path, write(tmp_path, "seq.txt", GOOD), metadata)
    assert rc == 0 and "no interaction item id matches a metadata key" in caplog.text


def test_a_failed_stage_leaves_the_run_manifest_as_it_was(tmp_path, capsys):
    path = write(tmp_path, "seq.txt", GOOD)
    rc, root = run_prepare(tmp_path, path)
    assert rc == 0
    manifest = (root / "r" / "manifest.json").read_bytes()
    path.write_text("u1 1 2\n")  # now too short: the stage fails
    assert run_prepare(tmp_path, path)[0] == 2
    assert (root / "r" / "manifest.json").read_bytes() == manifest
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    rc, root = run_prepare(fresh, path)
    assert rc == 2 and not (root / "r").exists()


def test_names_and_roots_that_are_not_folders(tmp_path, capsys):
    path = write(tmp_path, "seq.txt", GOOD)
    rc, _ = run_prepare(tmp_path, path, None, "dataset.name=../../elsewhere")
    assert rc == 2 and "dataset.name: '../../elsewhere' is not allowed" in capsys.readouterr().err
    root = write(tmp_path, "a-file", "")
    rc = main(
        [
            "prepare",
            "-o",
            f"dataset.interactions.path={path}",
            "-o",
            "dataset.metadata.path=null",
            "-o",
            f"run.root={root}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "a-file" in err and "Not a directory" in err and err.count("\n") == 1


def test_repeated_metadata_records_are_reported(tmp_path, capsys):
    metadata = write(tmp_path, "m.jsonl", '{"asin": "1", "title": "a"}\n{"asin": "1", "title": "b"}\n{"asin": "2"}\n')
    rc, _ = run_prepare(tmp_path, write(tmp_path, "seq.txt", GOOD), metadata, "dataset.metadata.key=asin")
    assert rc == 0 and "; 1 repeated records (the first kept)" in capsys.readouterr().out


def test_a_json_metadata_object_repeating_a_key_keeps_the_first_record_as_json_lines_do(tmp_path, capsys):
    metadata = write(tmp_path, "m.json", '{"1": {"title": "first"}, "2": {"title": "b"}, "1": {"title": "second"}}')
    rc, root = run_prepare(tmp_path, write(tmp_path, "seq.txt", GOOD), metadata)
    assert rc == 0 and "; 1 repeated records (the first kept)" in capsys.readouterr().out
    lines = (root / "r" / "dataset" / "item_meta.jsonl").read_text().splitlines()
    titles = [meta["title"] for meta in map(json.loads, lines) if meta]  # items without metadata are null
    assert "first" in titles and "second" not in titles
