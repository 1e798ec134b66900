"""The code's shape, checked like its behaviour: lint, format and the allowed import directions.

The import contracts (``.importlinter``) say: the command line sits on the
library; orchestration (pipeline, api) above the stages, the stages above the
libraries; no stage imports another; evaluation knows no recommender; only the
graph builder and the gnn DGL backend import DGL.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [("check", "."), ("format", "--check", ".")])
def test_ruff(command):
    done = run(sys.executable, "-m", "ruff", *command)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_import_contracts():
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert tool, "lint-imports (import-linter) is not installed: pip install -e '.[dev]'"
    done = run(tool, "--no-cache")
    assert done.returncode == 0 and "BROKEN" not in done.stdout, done.stdout[-4000:]


def test_the_recommender_trains_and_ranks_with_dgl_unimportable(tiny, tmp_path):
    """Graph and pretraining stages built where DGL is installed; the recommender, the graph as a third
    view included, then trains and evaluates in a process that cannot import DGL."""
    from cli.main import main
    from tests.conftest import tiny_flags

    overrides = tiny_flags(tiny, tmp_path / "runs", "train.epochs=1", "gnn.epochs=2", "seq.fusion=view")
    assert main(["pretrain-gnn", *overrides]) == 0
    blocked = "import sys; sys.modules['dgl'] = None; from cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", blocked, "train-seq", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| full | overall | model |" in done.stdout
    assert (tmp_path / "runs" / "r" / "eval" / "metrics.json").is_file()


def test_the_readme_is_a_front_door():
    """At most 400 lines, the two set-up commands CI runs, a code map and the configuration reference."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 400
    install = 'pip install uv==0.13.9 && uv pip install --compile-bytecode -e ".[dev]"'
    assert install + " && esr pipeline configs/quick.yaml" in text
    assert ". .venv/bin/activate && python -m pytest -q tests" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q tests" in ci
    assert all(step in ci for step in install.split(" && ")), "CI installs as the README does"
    assert "## Code map" in text and "docs/configuration.md" in text
    for folder in ("cli/", "esrgraph/stages/", "esrgraph/seq/", "esrgraph/training/"):
        assert f"`{folder}`" in text, folder


def test_dgl_is_imported_only_by_the_graph_builder_and_the_gnn_dgl_backend():
    """The direct importers, whitelisted (.importlinter's dgl-contained contract covers indirect paths)."""
    import re

    importers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "esrgraph").rglob("*.py")
        if re.search(r"^\s*(import dgl|from dgl)", path.read_text(), re.M)
    )
    assert importers and all(p.startswith("esrgraph/graph/") or p == "esrgraph/gnn/dgl_backend.py" for p in importers)


def test_no_backbone_variant_or_objective_name_is_compared_outside_its_registry():
    """Code asks a part's registered spec what it can do; comparing its name would hide a capability
    a new part must then be added to by hand."""
    import re

    from esrgraph.seq.registry import BACKBONES, OBJECTIVES, VARIANTS

    names = "|".join(re.escape(n) for n in BACKBONES.names() + OBJECTIVES.names() + VARIANTS.names())
    quoted = rf"""["']({names})["']"""
    comparison = re.compile(rf"(==|!=)\s*{quoted}|{quoted}\s*(==|!=)|\bin\s*[(\[{{][^)\]}}]*{quoted}")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("esrgraph", "cli", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if comparison.search(line)
    ]
    assert not offenders, "\n".join(offenders)
    assert comparison.search('if cfg.seq.backbone == "bert4rec":')  # the pattern does catch one
