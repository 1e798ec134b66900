"""The graph stage through config and the command line: artifacts, loaders, errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from esrgraph.config import load_config
from esrgraph.errors import ConfigError, InputError
from esrgraph.graph.io import load_edges, load_graph, load_sidecar, node_values
from esrgraph.pipeline import ensure
from esrgraph.runs import Run
from tests.conftest import as_flags, tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def test_stage_writes_graph_sidecar_and_edges(tiny, tmp_path):
    run = Run(load_config(None, tiny_overrides(tiny, tmp_path / "runs")))
    out = ensure(run, "graph")
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"graph.bin", "graph.json", "edges.npz"}
    meta = load_sidecar(out, num_items=8)
    # tiny items 1..8: OPI x2, L&#39;Oreal x2, Unknown (missing), Dove and Maybelline once (dropped)
    assert node_values(meta, "brand") == ["l'oreal", "opi"] and meta["vocab"]["brand"]["counts"] == [2, 2]
    assert meta["stats"]["attributes"]["brand"]["values_dropped"] == 2
    assert meta["num_nodes"]["item"] == 9 and meta["config"]["min_count"]["brand"] == 2
    assert meta["inputs"]["stage:dataset"] == run.stage_key("dataset") and len(meta["input_hash"]) == 64
    assert meta["price_edges"] == sorted(meta["price_edges"]) and meta["stats"]["prices"]["parsed"] == 6

    graph, graph_meta = load_graph(out, num_items=8)
    assert graph_meta == meta and graph.num_nodes("item") == 9
    assert graph.nodes["item"].data["id"].tolist() == list(range(9))
    edges = load_edges(out, num_items=8)
    for relation, (src, dst) in edges.edges.items():
        got_src, got_dst = graph.edges(etype=relation, order="eid")
        assert np.array_equal(got_src.numpy(), src) and np.array_equal(got_dst.numpy(), dst)
    assert (
        ensure(run, "graph") == out
        and json.loads((out / "manifest.json").read_text())["created"] == manifest["created"]
    )


def test_loaders_refuse_a_graph_of_another_dataset(tiny, tmp_path):
    out = ensure(Run(load_config(None, tiny_overrides(tiny, tmp_path / "runs"))), "graph")
    for load in (load_graph, load_edges, load_sidecar):
        with pytest.raises(
            InputError, match="the graph has 8 items but the dataset has 7; it was built from other data"
        ):
            load(out, num_items=7)
    with pytest.raises(InputError, match="graph edges not found"):
        load_edges(tmp_path)


def test_edges_load_without_dgl(tiny, tmp_path):
    out = ensure(Run(load_config(None, tiny_overrides(tiny, tmp_path / "runs"))), "graph")
    code = (
        "import sys; sys.modules['dgl'] = None\n"  # any 'import dgl' now fails
        "from esrgraph.graph.io import load_edges, load_sidecar\n"
        f"e = load_edges({str(out)!r}, num_items=8); m = load_sidecar({str(out)!r})\n"
        "print(e.num_nodes['item'], len(m['vocab']['brand']['values']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["9", "2"]


def test_cli_prints_statistics(tiny, tmp_path, capsys):
    args = ["build-graph", *as_flags(tiny_overrides(tiny, tmp_path / "runs"))]
    assert main(args + ["-o", "graph.category_hierarchy=true"]) == 0
    out = capsys.readouterr().out
    assert "items with no attribute: 0 (0.0%)" in out  # every tiny item is under "beauty"
    assert "category child_of" in out and "prices: 6 present, 6 parsed, 0 unparseable" in out


def test_cli_no_usable_attribute_exit_2(tiny, tmp_path, capsys):
    meta = tmp_path / "useless.json"
    records = {str(i): {"title": f"item {i}", "brand": "Unknown", "price": "call us"} for i in range(1, 9)}
    meta.write_text(json.dumps(records))
    root = tmp_path / "runs"
    overrides = tiny_overrides(tiny, root)[:-2] + [f"dataset.metadata.path={meta}", f"run.root={root}", "run.name=r"]
    assert main(["build-graph", *as_flags(overrides)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("esr: error: ") and err.count("\n") == 1
    assert "useless.json: no usable attribute; none of the 8 items keeps a brand, category or price" in err
    assert (root / "r" / "dataset" / "manifest.json").is_file()
    assert not (root / "r" / "graph").exists() and not list((root / "r").glob(".graph*"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("graph.price_buckets=0", "graph.price_buckets: 0 is out of range; expected a value >= 1"),
        ("graph.category_levels=middle", "graph.category_levels: 'middle' is not allowed; choose one of all, leaf"),
        ("graph.min_count.brand=0", "graph.min_count.brand: 0 is out of range"),
        ("graph.price_bucketing=linear", "graph.price_bucketing: 'linear' is not allowed; choose one of quantile, log"),
        ("graph.placeholders=unknown", "graph.placeholders: expected a list"),
        ("graph.min_count=3", "graph.min_count: expected a mapping"),
        ("graph.category_max_depth=0", "graph.category_max_depth: 0 is out of range"),
    ],
)
def test_bad_graph_config_names_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, [override])
