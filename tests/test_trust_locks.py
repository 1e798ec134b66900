"""One writer per stage: a second process that needs to write a stage being written stops with one line."""

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cli.main import main
from esrgraph import pipeline
from esrgraph.errors import EsrError
from esrgraph.locks import exclusive
from esrgraph.runs import Run
from tests.conftest import tiny_flags

REPO = Path(__file__).resolve().parents[1]


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    lock = tmp_path / "run" / ".seq.lock"
    with exclusive(lock, "the seq stage of run"):
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(EsrError) as refused:
            with exclusive(lock, "the seq stage of run"):
                pass
        assert str(refused.value) == (
            f"another esr process (pid {os.getpid()}) is writing the seq stage of run; wait for it to finish"
        )
        with exclusive(lock.with_name(".seq-sasrec.lock"), "the seq-sasrec stage of run"):  # another variant
            pass
    assert not lock.exists()
    assert not (tmp_path / "run").exists()  # the folder made for the lock went with it, being empty
    with exclusive(lock, "the seq stage of run"):  # free again
        pass


def test_a_stage_another_process_finished_meanwhile_is_not_run_again(tiny_config, monkeypatch):
    run = Run(tiny_config("run.name=r"))
    pipeline.ensure(run, "dataset")
    checks = []
    is_current = Run.is_current

    def stale_at_first(self, stage, key):  # as if another process finished it just after this one looked
        checks.append(stage)
        return len(checks) > 1 and is_current(self, stage, key)

    monkeypatch.setattr(Run, "is_current", stale_at_first)
    produced = []
    monkeypatch.setitem(
        pipeline.STAGES, "dataset", replace(pipeline.STAGES["dataset"], produce=lambda ctx, out: produced.append(1))
    )
    assert pipeline.ensure(run, "dataset") == run.stage_dir("dataset")
    assert checks == ["dataset", "dataset"] and produced == []  # checked again under the lock, then skipped
    assert not run.dir.joinpath(".dataset.lock").exists()


def esr(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def test_a_second_trainer_of_the_same_stage_stops_with_one_line(tiny, tmp_path):
    root = tmp_path / "runs"
    overrides = tiny_flags(
        tiny,
        root,
        "seq.variant=plain",
        "train.seeds=[1]",
        "train.epochs=100000",  # trains until stopped
        "train.patience=100000",
    )
    assert main(["prepare"] + overrides) == 0  # both find the dataset up to date: only seq is contended
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(esr("train-seq", *overrides), cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    lock = root / "r" / ".seq.lock"
    try:
        wait_for(lambda: lock.is_file() and lock.read_text() == f"{first.pid}\n", first)
        second = subprocess.Popen(
            esr("-q", "train-seq", *overrides), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        stdout, stderr = second.communicate(timeout=120)
        assert second.returncode == 2 and stdout == b""
        assert stderr.decode() == (
            f"esr: error: another esr process (pid {first.pid}) is writing the seq stage of {root / 'r'}; "
            "wait for it to finish\n"
        )
        assert first.poll() is None  # the first trains on, undisturbed
        assert not any(str(second.pid) in p.name for p in (root / "r").iterdir())  # nothing of the second's
        wait_for(lambda: (root / "r" / "seq.checkpoints").is_dir(), first)  # training, not still starting
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert first.returncode == 143  # SIGTERM unwinds: the lock and the temporary folder go
    left = sorted(p.name for p in (root / "r").iterdir())
    assert left == ["config.yaml", "dataset", "manifest.json", "seq.checkpoints"]


def wait_for(condition, process: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the first process ended early (status {process.returncode})"
        assert time.monotonic() < deadline, "the first process never took the lock"
        time.sleep(0.1)
