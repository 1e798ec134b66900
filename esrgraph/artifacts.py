"""Atomic artifact writing, file hashing and stage manifests.

Each stage writes into a temporary sibling folder and renames it into place
only when everything is written, so an interrupted or failed stage never leaves
a half-written output behind (a process killed outright leaves its temporary
folder, which the stage's next run on that host removes). A stage's
``manifest.json`` records the resolved config, the hashes of its inputs and
outputs, and the package versions; a stage whose manifest key matches is up to
date and is not run again.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
_PACKAGES = ("esrgraph", "torch", "dgl", "numpy", "scipy", "sentence-transformers", "transformers")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_manifest(stage_dir: str | os.PathLike) -> dict | None:
    path = Path(stage_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def is_up_to_date(stage_dir: str | os.PathLike, key: str) -> bool:
    """True when the stage folder holds a complete output made with this key."""
    manifest = read_manifest(stage_dir)
    if manifest is None or manifest.get("key") != key:
        return False
    return all((Path(stage_dir) / name).is_file() for name in manifest.get("artifacts", {}))


@contextlib.contextmanager
def stage_output(stage_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``stage_dir`` atomically."""
    stage_dir = Path(stage_dir)
    created = _make_folders(stage_dir.parent)
    remove_abandoned(stage_dir)
    tmp = Path(tempfile.mkdtemp(dir=stage_dir.parent, prefix=f"{_tmp_prefix(stage_dir)}{os.getpid()}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        old = stage_dir.with_name(f".{stage_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if stage_dir.exists():
            os.replace(stage_dir, old)
        os.replace(tmp, stage_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_if_empty(created)
        raise


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, deepest last."""
    missing = []
    while not folder.exists():  # stops at the first folder that exists (at worst the root)
        missing.append(folder)
        folder = folder.parent
    if missing:
        missing[0].mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_if_empty(created: list[Path]) -> None:
    """A failed first stage leaves no empty run folder behind: remove the folders
    this stage created, deepest first, while they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:  # not empty (another stage or process wrote there) or gone
            return


def _tmp_prefix(stage_dir: Path) -> str:
    """Temporary folders carry host and process id, so a later run can tell abandoned ones."""
    return f".{stage_dir.name}.{platform.node()}-"


def remove_abandoned(stage_dir: Path) -> None:
    """Remove the temporary folders of ``stage_dir`` left by processes of this host that no
    longer run (killed outright, e.g. out of memory). Another host's folders, or a running
    process's, are left alone."""
    prefix = _tmp_prefix(stage_dir)
    for folder in stage_dir.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = folder.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def write_manifest(
    out_dir: Path, stage: str, key: str, config: Any, inputs: dict[str, str], extra: dict | None = None
) -> dict:
    """Record every file in ``out_dir`` with its hash, plus config, inputs and versions."""
    artifacts = {p.name: sha256_file(p) for p in sorted(out_dir.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {
        "stage": stage,
        "key": key,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config,
        "inputs": inputs,
        "artifacts": artifacts,
        "versions": package_versions(),
    }
    if extra:
        manifest.update(extra)
    write_json(out_dir / MANIFEST, manifest)
    return manifest
