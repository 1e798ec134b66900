"""A damaged artifact is never "up to date": its stage runs again, with a warning naming the file."""

import json
import logging
import shutil
from dataclasses import replace

import pytest

from cli.main import main
from esrgraph import artifacts, pipeline
from esrgraph.artifacts import is_up_to_date, read_manifest, sha256_file, write_manifest
from tests.conftest import tiny_flags, write_tiny

QUICK = [
    "train.epochs=2",
    "train.seeds=[1]",
    "gnn.epochs=2",
]


def rewrite(path, content):
    """Replace ``path`` by a new file, as atomic writes do (an in-place rewrite within one clock tick
    could keep the mtime, the cache's sign of a new version)."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(content)
    new.replace(path)


def pipeline_args(data, root):
    return ["pipeline", *tiny_flags(data, root, *QUICK)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(tiny data, a run root where every stage of the pipeline is up to date), made once for the module."""
    folder = tmp_path_factory.mktemp("finished")
    data = write_tiny(folder / "data")
    assert main(pipeline_args(data, folder / "runs")) == 0
    return data, folder / "runs"


@pytest.fixture
def produced(monkeypatch):
    """The names of the stages that run, in order."""
    ran = []
    for name, stage in pipeline.STAGES.items():

        def recording(ctx, out, name=name, produce=stage.produce):
            ran.append(name)
            return produce(ctx, out)

        monkeypatch.setitem(pipeline.STAGES, name, replace(stage, produce=recording))
    return ran


@pytest.mark.parametrize(
    "stage, name",
    [
        ("dataset", "dataset.npz"),
        ("embed", "item_llm.npy"),
        ("embed", "similar_users.npy"),
        ("graph", "edges.npz"),
        ("graph", "graph.bin"),
        ("seq", "model-seed1.pt"),
    ],
)
def test_a_truncated_artifact_makes_its_stage_run_again(finished, tmp_path, produced, caplog, capsys, stage, name):
    data, source = finished
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    path = root / "r" / stage / name
    written = path.stat().st_size
    path.write_bytes(path.read_bytes()[: written // 2])
    with caplog.at_level(logging.WARNING):
        assert main(pipeline_args(data, root)) == 0
    assert produced == [stage]  # the stages after it keep their outputs: their keys did not change
    assert f"{path}: {written // 2} bytes, but {written} were written; the {stage} stage is damaged" in caplog.text
    assert caplog.text.count(str(path)) == 1  # one warning, though the stage is checked several times
    manifest = read_manifest(root / "r" / stage)
    assert path.stat().st_size == written and sha256_file(path) == manifest["artifacts"][name]
    assert "Traceback" not in capsys.readouterr().err
    assert sorted(p.name for p in (root / "r").iterdir()) == sorted(p.name for p in (source / "r").iterdir())


def test_a_file_rewritten_at_the_same_size_is_found_by_its_hash(tmp_path, caplog):
    stage = tmp_path / "graph"
    stage.mkdir()
    (stage / "edges.npz").write_bytes(b"0123456789")
    write_manifest(stage, "graph", "k", {}, {})
    assert is_up_to_date(stage, "k")
    rewrite(stage / "edges.npz", b"0123456780")
    with caplog.at_level(logging.WARNING):
        assert not is_up_to_date(stage, "k")
    assert "edges.npz: its sha256 differs from the one recorded when it was written" in caplog.text


def test_manifests_without_sizes_are_checked_by_hash(tmp_path):
    stage = tmp_path / "embed"
    stage.mkdir()
    (stage / "item_llm.npy").write_bytes(b"x" * 100)
    manifest = write_manifest(stage, "embed", "k", {}, {})
    assert manifest["artifact_bytes"] == {"item_llm.npy": 100}
    del manifest["artifact_bytes"]  # as written before sizes were recorded
    (stage / "manifest.json").write_text(json.dumps(manifest))
    assert is_up_to_date(stage, "k")
    (stage / "item_llm.npy").write_bytes(b"x" * 50)
    assert not is_up_to_date(stage, "k")


def test_repeated_checks_hash_each_file_once(tmp_path, monkeypatch):
    stage = tmp_path / "seq"
    stage.mkdir()
    for n in range(3):
        (stage / f"model-seed{n}.pt").write_bytes(bytes([n]) * 1000)
    write_manifest(stage, "seq", "k", {}, {})
    hashed = []
    monkeypatch.setattr(artifacts, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    for _ in range(5):
        assert is_up_to_date(stage, "k")
    assert hashed == []  # the manifest's own hashes, taken as the files were written, serve every check
    rewrite(stage / "model-seed1.pt", b"y" * 1000)  # a new version of one file: hashed once
    for _ in range(5):
        assert not is_up_to_date(stage, "k")
    assert [p.name for p in hashed] == ["model-seed1.pt"]


def recommend_args(data, root):
    return ["recommend", *pipeline_args(data, root)[1:], "--user", "u1", "-k", "2"]


@pytest.mark.parametrize(
    "name, damage",
    [
        ("seq/manifest.json", lambda b: b[:-40]),
        ("seq/model-seed1.pt", lambda b: b[: len(b) // 2]),
        ("dataset/dataset.npz", lambda b: b + b"garbage"),
    ],
)
def test_recommend_names_the_damaged_artifact(finished, tmp_path, capsys, name, damage):
    """Not "no model trained with this config": the model is there, one of its files is damaged."""
    from esrgraph.api import load_recommender
    from esrgraph.errors import EsrError

    data, source = finished
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    path = root / "r" / name
    rewrite(path, damage(path.read_bytes()))
    capsys.readouterr()
    assert main(recommend_args(data, root)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"esr: error: {path}: ")
    assert "is damaged; run esr train-seq with this config, which rebuilds what is damaged" in err
    with pytest.raises(EsrError, match=f"{path}: .* the {name.split('/')[0]} stage of this run directory"):
        load_recommender(root / "r")  # a run directory is checked against its manifests as well


@pytest.mark.parametrize(
    "name, damage, said",
    [
        ("seq/manifest.json", lambda b: b"{ not json", "unreadable ("),
        ("seq/model-seed1.pt", lambda b: b[: len(b) // 2], None),  # None: the sizes are named
        ("dataset/dataset.npz", lambda b: b + b"garbage", None),
    ],
)
def test_evaluate_names_a_damaged_artifact_and_runs_its_stage_again(
    finished, tmp_path, produced, caplog, name, damage, said
):
    data, source = finished
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    path = root / "r" / name
    stage = name.split("/")[0]
    before = path.read_bytes()
    rewrite(path, damage(before))
    said = said or f"{len(damage(before))} bytes, but {len(before)} were written"
    args = ["evaluate", *pipeline_args(data, root)[1:]]
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    assert f"{path}: {said}" in caplog.text and f"the {stage} stage is damaged and runs again" in caplog.text
    assert produced == [stage]  # the same output again: the later stages' keys did not change
    assert read_manifest(root / "r" / stage)["stage"] == stage
