"""Atomic artifact writing, file hashing and stage manifests.

Each stage writes into a temporary sibling folder and renames it into place
only when everything is written, so an interrupted or failed stage never leaves
a half-written output behind (a process killed outright leaves its temporary
folder, which the stage's next run on that host removes). A stage's
``manifest.json`` records the resolved config, the hashes of its inputs and
outputs, and the package versions; a stage whose manifest key matches, and
whose artifacts still have the recorded sizes and hashes, is up to date and is
not run again.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import logging
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

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_PACKAGES = ("esrgraph", "torch", "dgl", "numpy", "scipy", "sentence-transformers", "transformers", "openvino")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# sha256 by (device, inode, size, mtime): a file hashed once in a process costs nothing to check again,
# and the inode survives the rename of a stage's temporary folder, so the hashes of write_manifest serve
# the checks that follow. A rewrite changes the mtime, a truncation the size.
_DIGESTS: dict[tuple[int, int, int, int], str] = {}
_WARNED: set[tuple[str, int, int]] = set()


def cached_sha256(path: str | os.PathLike) -> str:
    """``sha256_file``, computed once per file version within this process."""
    stat = os.stat(path)
    version = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if version not in _DIGESTS:
        _DIGESTS[version] = sha256_file(path)
    return _DIGESTS[version]


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
    """True when the stage folder holds a complete, undamaged output made with this key."""
    manifest = read_manifest(stage_dir)
    if manifest is None or manifest.get("key") != key:
        return False
    damage = damaged_artifact(Path(stage_dir), manifest)
    if damage is not None:
        path, what = damage
        _warn_once(path, f"{path}: {what}; the {manifest.get('stage', 'stage')} stage is damaged and runs again")
    return damage is None


def damaged_artifact(stage_dir: Path, manifest: dict) -> tuple[Path, str] | None:
    """(path, what is wrong) of the first artifact the manifest records that is missing or differs from
    what was written; None when every one is whole.

    Sizes are compared first, so a truncated file costs no hashing; hashes are cached
    (:func:`cached_sha256`). Manifests written before sizes were recorded are checked by hash alone.
    """
    artifacts, sizes = manifest.get("artifacts", {}), manifest.get("artifact_bytes", {})
    try:
        for name in artifacts:
            path = stage_dir / name
            if not path.is_file():
                return path, "missing"
            if name in sizes and path.stat().st_size != sizes[name]:
                return path, f"{path.stat().st_size} bytes, but {sizes[name]} were written"
        for name, digest in artifacts.items():
            if cached_sha256(stage_dir / name) != digest:
                return stage_dir / name, "its sha256 differs from the one recorded when it was written"
    except FileNotFoundError as exc:  # the folder was replaced while it was read
        return Path(exc.filename or stage_dir), "missing"
    return None


def _warn_once(path: Path, message: str) -> None:
    """One warning per version of a damaged file, however often its stage is checked."""
    try:
        stat = path.stat()
        version = (str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        version = (str(path), -1, -1)
    if version not in _WARNED:
        _WARNED.add(version)
        log.warning("%s", message)


@contextlib.contextmanager
def stage_output(stage_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``stage_dir`` atomically."""
    stage_dir = Path(stage_dir)
    created = make_folders(stage_dir.parent)
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
        remove_if_empty(created)
        raise


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, deepest last."""
    missing = []
    while not folder.exists():  # stops at the first folder that exists (at worst the root)
        missing.append(folder)
        folder = folder.parent
    if missing:
        missing[0].mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_if_empty(created: list[Path]) -> None:
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
    """Record every file in ``out_dir`` with its hash and size, plus config, inputs and versions."""
    files = [p for p in sorted(out_dir.iterdir()) if p.is_file() and p.name != MANIFEST]
    manifest = {
        "stage": stage,
        "key": key,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config,
        "inputs": inputs,
        "artifacts": {p.name: cached_sha256(p) for p in files},
        "artifact_bytes": {p.name: p.stat().st_size for p in files},  # checked on every run, cheaply
        "versions": package_versions(),
    }
    if extra:
        manifest.update(extra)
    write_json(out_dir / MANIFEST, manifest)
    return manifest
