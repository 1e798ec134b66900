"""Stage outputs: written whole or not at all, and no temporary folder outlives its process."""

import os
import platform
import subprocess
import sys
import tempfile

import pytest
import torch

from esrgraph import artifacts
from esrgraph.artifacts import atomic_write, atomic_write_bytes, stage_output
from esrgraph.training.checkpoint import load_state, save_state


def test_a_failed_stage_leaves_neither_output_nor_temporary_folder(tmp_path):
    stage = tmp_path / "run" / "graph"
    with pytest.raises(RuntimeError):
        with stage_output(stage) as out:
            (out / "half.bin").write_bytes(b"x")
            raise RuntimeError("failed midway")
    assert list(tmp_path.iterdir()) == []  # the run folder it created went with it


def test_a_failed_stage_keeps_folders_that_hold_other_outputs(tmp_path):
    run = tmp_path / "run"
    (run / "dataset").mkdir(parents=True)
    with pytest.raises(RuntimeError):
        with stage_output(run / "graph"):
            raise RuntimeError("failed midway")
    assert [p.name for p in run.iterdir()] == ["dataset"]


def test_folders_of_dead_processes_on_this_host_are_removed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = platform.node()
        abandoned = run / f".seq.{host}-{dead.pid}.abc.tmp"
        running = run / f".seq.{host}-{alive.pid}.def.tmp"
        elsewhere = run / f".seq.another-host-{dead.pid}.ghi.tmp"
        other_stage = run / f".eval.{host}-{dead.pid}.jkl.tmp"
        for folder in (abandoned, running, elsewhere, other_stage):
            folder.mkdir()
        with stage_output(run / "seq") as out:
            (out / "model.pt").write_bytes(b"x")
        assert not abandoned.exists()
        assert running.exists() and elsewhere.exists() and other_stage.exists()
        assert (run / "seq" / "model.pt").read_bytes() == b"x"
    finally:
        alive.kill()
        alive.wait()


def test_every_command_removes_the_temporaries_of_dead_processes_anywhere_in_the_run_directory(tmp_path):
    """Stage folders, atomic writes beside the run's config and inside checkpoints: a dead process's go,
    a running process's stay, and so do another host's and names that carry no process id."""
    from cli.main import main

    run = tmp_path / "runs" / "r"
    (run / "seq.checkpoints" / "seed-1").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = platform.node()
    try:
        gone = [
            run / f".seq.{host}-{dead.pid}.abc.tmp",
            run / f".config.yaml.{host}-{dead.pid}.k2j.tmp",
            run / "seq.checkpoints" / "seed-1" / f".epoch-00003.pt.{host}-{dead.pid}.x9.tmp",
        ]
        kept = [
            run / f".gnn.{host}-{alive.pid}.def.tmp",
            run / "seq.checkpoints" / "seed-1" / f".checkpoint.json.{host}-{alive.pid}.q.tmp",
            run / f".eval.another-host-{dead.pid}.ghi.tmp",
            run / ".manifest.json.abc123.tmp",  # written before names carried a process id: cannot tell
        ]
        gone[0].mkdir()
        (gone[0] / f".model-seed1.pt.{host}-{dead.pid}.inner.tmp").write_bytes(b"x")
        for path in gone[1:] + kept:
            path.write_bytes(b"x")
        assert main(["show-config", "-o", f"run.root={tmp_path / 'runs'}", "-o", "run.name=r"]) == 0
        assert [p for p in gone if os.path.lexists(p)] == []
        assert [p for p in kept if not p.exists()] == []
    finally:
        alive.kill()
        alive.wait()


def test_atomic_writes_name_their_temporary_file_after_host_and_process(tmp_path, monkeypatch):
    prefixes = []
    real = tempfile.mkstemp
    monkeypatch.setattr(artifacts.tempfile, "mkstemp", lambda **kw: prefixes.append(kw["prefix"]) or real(**kw))
    atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert prefixes == [f".a.json.{platform.node()}-{os.getpid()}."]
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_write_that_fails_half_way_leaves_the_previous_file_whole_and_no_temporary(tmp_path):
    path = tmp_path / "state.pt"
    save_state(path, {"w": torch.arange(4.0)})
    before = path.read_bytes()

    def part_then_fail(handle):
        handle.write(before[:10])  # streamed: these bytes already reached the temporary file
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, part_then_fail)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    assert torch.equal(load_state(path)["w"], torch.arange(4.0))
