"""One writer per stage: an exclusive, non-blocking lock on a file beside the stage folder.

``fcntl.flock`` locks belong to the open file and the kernel drops them when
the process ends, however it ends, so a killed writer never leaves a lock
held. The lock file records the holder's pid for the message of the process
that is refused; the holder removes it when done. Readers of an up-to-date
stage take no lock: stage folders are replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .artifacts import make_folders, remove_if_empty
from .errors import EsrError


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the lock on ``path`` (created with its missing folders, removed after) while writing ``what``;
    a lock held by another process raises :class:`EsrError` naming that process."""
    created = make_folders(path.parent)
    try:
        fd = _acquire(path, what)
    except BaseException:
        remove_if_empty(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        _release(path, fd)
        remove_if_empty(created)  # a first stage that failed leaves no empty run folder for its lock


@contextlib.contextmanager
def try_exclusive(path: Path, what: str) -> Iterator[bool]:
    """Whether this process holds ``path``'s lock, for the block's duration; never waits (held elsewhere:
    False). For work that one process does on behalf of all, such as merging a shared cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open(path, what)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing drops the lock


def _acquire(path: Path, what: str) -> int:
    """A descriptor of ``path`` holding its lock."""
    while True:
        fd = _open(path, what)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise EsrError(f"another esr process (pid {holder}) is writing {what}; wait for it to finish") from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder removed this file as we opened it: lock the one now at ``path``


def _open(path: Path, what: str) -> int:
    """The lock file, created if missing; a folder that refuses it (read-only, another user's) is named, not
    the hidden lock file."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise EsrError(
            f"{path.parent}: {exc.strerror} while locking {what} for writing; "
            "make the folder writable, or set run.root to a folder you can write"
        ) from None


def _release(path: Path, fd: int) -> None:
    """Remove the file before unlocking: whoever opens ``path`` next creates, and locks, a new one."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    """The pid the holder recorded ("unknown" in the moment between its lock and its write)."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"
