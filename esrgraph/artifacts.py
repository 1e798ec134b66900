"""Atomic artifact writing, file hashing and stage manifests.

Each stage writes into a temporary sibling folder and renames it into place
only when everything is written, so an interrupted or failed stage never leaves
a half-written output behind. A process killed outright leaves its temporary
folders and files; their names carry host and process id
(``.<name>.<host>-<pid>.<random>.tmp``), so the next command on that run
directory removes those of processes of this host that no longer run
(:func:`remove_abandoned_temporaries`) and leaves a running writer's alone. A stage's
``manifest.json`` records the resolved config, the hashes of its inputs and
outputs, and the package versions; a stage whose manifest key matches, and
whose artifacts still have the recorded sizes and hashes, is up to date and is
not run again.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

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


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """``write(handle)`` into a temporary sibling of ``path``, then renamed onto it: an interruption or a
    full disk leaves the previous file whole. The bytes stream to the disk, so a checkpoint of several GB
    is never held in memory as well as in the model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp")
    except OSError as exc:  # named by the file being written, not by a temporary name nobody will find
        exc.filename = str(path)
        raise
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        write_to(fd, write)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk names no file: name this one
            exc.filename = str(path)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def write_to(fd: int, write: Callable[[BinaryIO], object]) -> None:
    """``write`` into the open file ``fd`` and flush it to the disk, closing ``fd``: the one place an
    artifact's or a checkpoint's bytes reach the file system, where a full disk shows."""
    with os.fdopen(fd, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, np.ascontiguousarray(array), allow_pickle=False))


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_manifest(stage_dir: str | os.PathLike) -> dict | None:
    """The stage's manifest; None when there is none or it cannot be read (:func:`stage_damage` says why)."""
    return _load_manifest(Path(stage_dir))[0]


def _load_manifest(stage_dir: Path) -> tuple[dict | None, str | None]:
    path = stage_dir / MANIFEST
    try:
        manifest = read_json(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({exc})"
    if not isinstance(manifest, dict):
        return None, f"unreadable (a JSON {type(manifest).__name__}, not an object)"
    return manifest, None


def is_up_to_date(stage_dir: str | os.PathLike, key: str, warn: bool = True) -> bool:
    """True when the stage folder holds a complete, undamaged output made with this key; a damaged one
    is named in a warning (it runs again) unless ``warn`` is false (a check that runs nothing)."""
    stage_dir = Path(stage_dir)
    manifest, damage = _check_stage(stage_dir, key)
    if damage is not None and warn:
        path, what = damage
        stage = manifest.get("stage", stage_dir.name) if manifest else stage_dir.name
        _warn_once(path, f"{path}: {what}; the {stage} stage is damaged and runs again")
    return manifest is not None and damage is None


def stage_damage(stage_dir: str | os.PathLike, key: str | None = None) -> str | None:
    """'<file>: <what is wrong>' when the stage's output made with ``key`` (None: with any key) is
    damaged, or its manifest cannot be read; None when it is whole, missing, or made with other settings."""
    damage = _check_stage(Path(stage_dir), key)[1]
    return f"{damage[0]}: {damage[1]}" if damage else None


def _check_stage(stage_dir: Path, key: str | None) -> tuple[dict | None, tuple[Path, str] | None]:
    """(the manifest, when made with ``key``; (path, what is wrong) of the damage, when there is some)."""
    manifest, problem = _load_manifest(stage_dir)
    if problem is not None:
        return None, (stage_dir / MANIFEST, problem)
    if manifest is None or key not in (None, manifest.get("key")):
        return None, None
    return manifest, damaged_artifact(stage_dir, manifest)


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
    try:
        tmp = temporary_sibling(stage_dir)
    except BaseException as exc:
        remove_if_empty(created)
        if isinstance(exc, OSError):
            exc.filename = str(stage_dir)
        raise
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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(created)
        if isinstance(exc, OSError):
            exc.filename = _outside(exc.filename, tmp, stage_dir)
        raise


def _outside(filename: object, tmp: Path, stage_dir: Path) -> object:
    """A file of the removed temporary folder named as it would have been in the stage folder."""
    if isinstance(filename, str) and filename.startswith(f"{tmp}{os.sep}"):
        return str(stage_dir / os.path.relpath(filename, tmp))
    return filename


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


def _owner_tag() -> str:
    """Host and process id in a temporary name: a later command can tell whether its writer still runs."""
    return f"{platform.node()}-{os.getpid()}"


def temporary_sibling(target: Path) -> Path:
    """A new empty folder beside ``target`` named with this host and process, so that
    :func:`remove_abandoned` removes it once this process is gone."""
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{_tmp_prefix(target)}{os.getpid()}.", suffix=".tmp"))


def _tmp_prefix(stage_dir: Path) -> str:
    return f".{stage_dir.name}.{platform.node()}-"  # then the process id: _owner_tag's format


def remove_abandoned(stage_dir: Path) -> None:
    """Remove the temporary folders of ``stage_dir`` left by processes of this host that no
    longer run (killed outright, e.g. out of memory). Another host's folders, or a running
    process's, are left alone."""
    for folder in stage_dir.parent.glob(f"{glob.escape(_tmp_prefix(stage_dir))}*.tmp"):
        if _abandoned(folder.name):
            shutil.rmtree(folder, ignore_errors=True)


def remove_abandoned_temporaries(folder: Path) -> list[Path]:
    """Remove every temporary folder and file under ``folder`` (a run directory) left by a process of this
    host that no longer runs; returns what was removed. A running process's are left alone, as are another
    host's (whether its writer runs cannot be told from here) and names without a process id."""
    removed = []
    for path in sorted(folder.rglob(".*.tmp")) if folder.is_dir() else []:
        if not _abandoned(path.name) or not os.path.lexists(path):  # gone with an abandoned folder above it
            continue
        try:  # best effort: a read-only run directory can still be read
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            continue
        removed.append(path)
    return removed


def _abandoned(name: str) -> bool:
    """Whether a temporary name carries this host and the id of a process that no longer runs."""
    found = re.search(rf"\.{re.escape(platform.node())}-(\d+)\.[^/]*\.tmp$", name)
    return found is not None and int(found.group(1)) != os.getpid() and not _running(int(found.group(1)))


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
