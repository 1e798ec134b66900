"""Entry point of ``esr``: registers the commands and turns user errors into exit status 2.

User-facing problems (:class:`esrgraph.errors.EsrError`) are printed on one
line, without a traceback.
"""

from __future__ import annotations

import sys

import click

from esrgraph.errors import EsrError

from . import data  # noqa: F401  (registers prepare, embed, show-config)
from . import gnn  # noqa: F401  (registers pretrain-gnn)
from . import graph  # noqa: F401  (registers build-graph)
from . import pipeline  # noqa: F401  (registers pipeline, ablate)
from . import seq  # noqa: F401  (registers train-seq, evaluate)
from .app import esr


def main(argv: list[str] | None = None) -> int:
    try:
        esr.main(args=argv, prog_name="esr", standalone_mode=False)
    except EsrError as exc:
        click.echo(f"esr: error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("esr: aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("esr: interrupted; finished stages and checkpoints are kept: rerun with --resume "
                   "(train-seq, pretrain-gnn) or rerun esr pipeline, which resumes by itself", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
