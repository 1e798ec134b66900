"""Faults from the machine: a full disk, a read-only run directory, a file removed between check and read.

Each gives one line and exit status 2, and leaves what was there before whole. A full disk is injected
at the one place artifact and checkpoint bytes reach the file system (``artifacts.write_to``), so the
tests run anywhere, without root or a small file system made for them.
"""

import errno
import io
import json
import os
from pathlib import Path

import pytest

from cli.main import main
from esrgraph import artifacts
from tests.conftest import tiny_flags

QUICK = [
    "seq.variant=plain",
    "train.epochs=3",
    "train.seeds=[1]",
]
NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")


def flags(tiny, root: Path) -> list[str]:
    return tiny_flags(tiny, root, *QUICK)


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def metrics(root: Path) -> dict:
    return json.loads((root / "r" / "eval" / "metrics.json").read_text())


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("esr: error: ") and "Traceback" not in err, err
    return err


def fill_disk_at(monkeypatch, name: str, seen: dict | None = None) -> None:
    """Writes of files called ``name`` stop half-way with ENOSPC, raised as the kernel raises it (no file
    name); ``seen`` receives the files of the folder being written as they were when the disk filled."""
    real = artifacts.write_to

    def write_to(fd, write):
        written = Path(os.readlink(f"/proc/self/fd/{fd}"))  # the temporary file: .<name>.<host>-<pid>.*.tmp
        if not written.name.startswith(f".{name}."):
            return real(fd, write)
        if seen is not None:  # what was there before this write began
            seen.update({k: v for k, v in files(written.parent).items() if k != written.name})
        buffer = io.BytesIO()
        write(buffer)
        os.write(fd, buffer.getvalue()[: len(buffer.getvalue()) // 2])
        os.close(fd)
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(artifacts, "write_to", write_to)


def test_a_full_disk_while_a_model_is_written_leaves_the_previous_model_whole(tiny, tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    args = flags(tiny, root)
    assert main(["train-seq", *args]) == 0
    seq, before, measured = root / "r" / "seq", files(root / "r" / "seq"), metrics(root)
    with monkeypatch.context() as patch:
        fill_disk_at(patch, "model-seed1.pt")
        capsys.readouterr()
        assert main(["train-seq", "--force", *args]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"esr: error: {seq / 'model-seed1.pt'}: {NO_SPACE} (the disk holding {seq});")
    assert "earlier outputs are unchanged: free space and run the command again (a training continues" in err
    assert files(seq) == before  # byte for byte, manifest included
    assert not list((root / "r").rglob(".*.tmp"))
    # space freed: the model trains again, and evaluated afresh it scores what the first one did
    assert main(["train-seq", "--force", *args]) == 0
    assert files(seq)["model-seed1.pt"] == before["model-seed1.pt"]
    assert main(["evaluate", "--force", *args]) == 0
    assert metrics(root) == measured


def test_a_full_disk_while_metrics_are_written_leaves_the_previous_ones_whole(tiny, tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    args = flags(tiny, root)
    assert main(["train-seq", *args]) == 0
    before = files(root / "r" / "eval")
    with monkeypatch.context() as patch:
        fill_disk_at(patch, "metrics.json")
        capsys.readouterr()
        assert main(["evaluate", "--force", *args]) == 2
    assert f"{root / 'r' / 'eval' / 'metrics.json'}: {NO_SPACE}" in one_error_line(capsys)
    assert files(root / "r" / "eval") == before
    assert main(["evaluate", "--force", *args]) == 0
    assert json.loads(files(root / "r" / "eval")["metrics.json"]) == json.loads(before["metrics.json"])


@pytest.mark.parametrize(
    "again, logged",
    [
        ([], "continuing from the checkpoints"),  # the same command again continues by itself
        (["--resume"], "continuing from the checkpoints"),
        (["--restart"], "discarding the checkpoint after epoch 1"),
    ],
)
def test_a_full_disk_while_a_checkpoint_is_written_keeps_the_last_one_and_resumes_exactly(
    tiny, tmp_path, monkeypatch, capsys, caplog, again, logged
):
    reference = tmp_path / "reference"
    assert main(["train-seq", *flags(tiny, reference)]) == 0
    root = tmp_path / "runs"
    args, at_fault = flags(tiny, root), {}
    with monkeypatch.context() as patch:
        fill_disk_at(patch, "epoch-00002.pt", at_fault)
        capsys.readouterr()
        assert main(["train-seq", *args]) == 2
    checkpoints = root / "r" / "seq.checkpoints" / "seed-1"
    err = one_error_line(capsys)
    assert err.startswith(f"esr: error: {checkpoints / 'epoch-00002.pt'}: {NO_SPACE} (the disk holding")
    assert {"checkpoint.json", "epoch-00001.pt"} <= set(at_fault)
    assert files(checkpoints) == at_fault  # epoch 1's checkpoint, byte for byte, and nothing half-written
    assert not (root / "r" / "seq").exists()
    caplog.clear()
    assert main(["train-seq", *again, *args]) == 0  # space freed
    assert logged in caplog.text
    assert metrics(root) == metrics(reference)


def test_resume_and_restart_together_are_refused(tiny, tmp_path, capsys):
    assert main(["train-seq", "--resume", "--restart", *flags(tiny, tmp_path)]) == 2
    assert "--resume and --restart contradict each other" in capsys.readouterr().err


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only: by its mode, or, where root ignores modes, by refusing every call that
    would create, replace or remove something inside it, as the kernel refuses them to other users."""
    locked: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            locked.extend(p for p in [folder, *folder.rglob("*")] if p.is_dir())
            for path in locked:
                path.chmod(0o555)
            return
        inside = lambda path: not isinstance(path, int) and Path(os.path.abspath(path)).is_relative_to(folder)

        def guarded(real, writes=lambda *args, **kwargs: True):
            def call(path, *args, **kwargs):
                if inside(path) and writes(*args, **kwargs):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
                return real(path, *args, **kwargs)

            return call

        creates = lambda flags, *args, **kwargs: flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        monkeypatch.setattr(os, "open", guarded(os.open, creates))
        for name in ("mkdir", "unlink", "rmdir", "replace", "rename"):
            monkeypatch.setattr(os, name, guarded(getattr(os, name)))

    yield make
    for path in locked:
        path.chmod(0o755)


def test_a_read_only_run_directory_is_read_but_not_written(tiny, tmp_path, read_only, capsys):
    root = tmp_path / "runs"
    args = flags(tiny, root)
    assert main(["train-seq", *args]) == 0
    before = files(root / "r")
    read_only(root / "r")
    capsys.readouterr()
    assert main(["recommend", *args, "--user", "u1", "-k", "2"]) == 0  # reading needs no write
    assert main(["train-seq", "--force", *args]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"esr: error: {root / 'r'}: {os.strerror(errno.EACCES)} while locking the seq stage")
    assert "make the folder writable, or set run.root to a folder you can write" in err
    assert files(root / "r") == before


def test_an_input_file_removed_between_its_check_and_its_read_is_one_line(tiny, tmp_path, monkeypatch, capsys):
    from esrgraph.data import files as data_files

    real = data_files.resolve_path

    def found_then_removed(path):
        resolved = real(path)
        if resolved.name == "interactions.json":
            resolved.unlink()
        return resolved

    monkeypatch.setattr(data_files, "resolve_path", found_then_removed)
    root = tmp_path / "runs"
    assert main(["prepare", *flags(tiny, root)]) == 2
    assert f"{tiny['json']}: " in one_error_line(capsys)
    assert not root.exists()


@pytest.mark.parametrize(
    "removed, message",
    [
        ("seq/model-seed1.pt", "seq: holds no trained model; run esr train-seq with this config first"),
        ("seq/model.json", "seq/model.json: cannot read the model description ([Errno 2] No such file"),
        ("dataset/dataset.npz", "dataset: cannot load the prepared dataset ([Errno 2] No such file"),
    ],
)
def test_a_run_file_removed_between_its_check_and_its_read_is_one_line(
    tiny, tmp_path, monkeypatch, capsys, removed, message
):
    from esrgraph import api

    root = tmp_path / "runs"
    args = flags(tiny, root)
    assert main(["train-seq", *args]) == 0
    real = api.current

    def checked_then_removed(run, name):  # the up-to-date check passes, then the file goes
        folder = real(run, name)
        (root / "r" / removed).unlink()
        return folder

    monkeypatch.setattr(api, "current", checked_then_removed)
    capsys.readouterr()
    assert main(["recommend", *args, "--user", "u1"]) == 2
    assert f"{root / 'r'}/{message}" in one_error_line(capsys)


@pytest.mark.parametrize("allocate", ["torch", "numpy"])
def test_running_out_of_memory_is_one_line_that_names_the_settings_and_keeps_finished_stages(
    tiny, tmp_path, monkeypatch, capsys, allocate
):
    """A real allocation the machine cannot give (torch's allocator and numpy's raise different errors)."""
    import numpy as np
    import torch

    from esrgraph.seq.trainer import Trainer

    def too_big(self, *args, **kwargs):
        return torch.empty(10**15) if allocate == "torch" else np.empty(10**15)

    monkeypatch.setattr(Trainer, "fit", too_big)
    assert main(["train-seq"] + flags(tiny, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("esr: error: out of memory") and "train.batch_size" in err[0], err
    assert (tmp_path / "r" / "dataset" / "manifest.json").is_file()  # the stage before is kept
    assert not (tmp_path / "r" / "seq").exists()


def test_other_runtime_errors_are_not_taken_for_memory(tiny, tmp_path, monkeypatch):
    from esrgraph.seq.trainer import Trainer

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Trainer, "fit", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train-seq"] + flags(tiny, tmp_path))
