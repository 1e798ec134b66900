"""Stage outputs: written whole or not at all, and no temporary folder outlives its process."""

import platform
import subprocess
import sys

import pytest

from esrgraph.artifacts import stage_output


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
