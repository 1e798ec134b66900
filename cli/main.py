"""Entry point of ``esr``: registers the commands and turns user errors into exit status 2.

User-facing problems (:class:`esrgraph.errors.EsrError`) are printed on one
line, without a traceback. A termination signal (``kill``, a job scheduler's
time limit) unwinds like Ctrl-C, so a stage's temporary folder is removed and
the checkpoints written so far are kept.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading

import click

from esrgraph.errors import EsrError

from . import (
    data,  # noqa: F401  (registers prepare, embed, show-config)
    gnn,  # noqa: F401  (registers pretrain-gnn)
    graph,  # noqa: F401  (registers build-graph)
    pipeline,  # noqa: F401  (registers pipeline, ablate)
    recommend,  # noqa: F401  (registers recommend)
    seq,  # noqa: F401  (registers train-seq, evaluate)
    tune,  # noqa: F401  (registers tune)
)
from .app import esr


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so cleanup code runs."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return _run(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    try:
        esr.main(args=argv, prog_name="esr", standalone_mode=False)
    except EsrError as exc:
        click.echo(f"esr: error: {_one_line(str(exc))}", err=True)
        return 2
    except OSError as exc:  # the file system refused (a run root that is a file, a full disk, permissions)
        click.echo(f"esr: error: {_os_error(exc)}", err=True)
        return 2
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            return _interrupted(130)
        click.echo("esr: aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted(130)
    except Terminated:
        return _interrupted(143)
    except (MemoryError, RuntimeError) as exc:  # after click's Abort, itself a RuntimeError
        if not _out_of_memory(exc):
            raise
        click.echo(f"esr: error: {_memory_advice(exc)}", err=True)
        return 2
    return 0


# What to do about a full disk: every write is atomic, so what was there before is whole
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _os_error(exc: OSError) -> str:
    """One line: the file, what the system said and, for a full disk, which disk and what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = f"{where}{_one_line(exc.strerror or str(exc))}"
    if exc.errno in _FULL:
        folder = os.path.dirname(str(exc.filename)) if exc.filename else "the output"
        text += (
            f" (the disk holding {folder}); earlier outputs are unchanged: free space and run the command again "
            "(a training continues from its last checkpoint)"
        )
    return text


def _out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError, torch's CPU allocator failing (a RuntimeError) or a GPU running out."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()


def _memory_advice(exc: BaseException) -> str:
    """One line: what ran out, and the settings that bound memory."""
    return (
        f"out of memory ({_one_line(str(exc))[:160]}); finished stages and checkpoints are kept. Lower "
        "train.batch_size or train.eval_batch_size, embed.batch_size, or gnn.seed_batch_size; on a large "
        "catalogue use train.loss=sampled_softmax and gnn.minibatch=true; then run the command again "
        "(a training continues from its last checkpoint)"
    )


def _one_line(text: str) -> str:
    """Messages that quote a library's multi-line error stay on one line."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _interrupted(status: int) -> int:
    click.echo(
        "esr: interrupted; finished stages and checkpoints are kept: run the same command again "
        "to continue from the last checkpoint",
        err=True,
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
