"""The encoder, its native message passing and the training run (whole graph and mini-batches) where DGL
cannot be imported."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["dgl"] = None  # any `import dgl` now raises ImportError
    import numpy as np, torch
    from esrgraph.gnn.backends import dgl_importable, resolve_backend
    from esrgraph.gnn.config import GnnConfig
    from esrgraph.gnn.encoder import item_embeddings
    from esrgraph.gnn.model import ContrastiveModel, build_encoder
    from esrgraph.gnn.pretrain import pretrain_into
    from esrgraph.gnn.synthetic import synthetic_edges
    from esrgraph.gnn.tensors import GraphTensors
    from esrgraph.errors import ConfigError

    edges = synthetic_edges(300, seed=1)
    graph = GraphTensors.from_edges(edges)
    cfg = GnnConfig(hidden=16, heads=2, epochs=2, batch_size=64)
    backend = resolve_backend("auto", torch.device("cpu"))
    try:
        resolve_backend("dgl", torch.device("cpu"))
        refused = ""
    except ConfigError as exc:
        refused = str(exc)
    torch.manual_seed(0)
    model = ContrastiveModel(build_encoder(cfg, graph, backend, {"item": torch.randn(301, 24)}), 8)
    model.loss(graph, cfg).backward()
    emb = item_embeddings(model.encoder, graph)
    extra = pretrain_into(__import__("pathlib").Path(sys.argv[1]), cfg, 0, edges, {"item": np.random.rand(301, 24)})
    sampled = GnnConfig(hidden=16, heads=2, epochs=6, minibatch=True, seed_batch_size=100, fanouts=[3])
    by_batches = pretrain_into(__import__("pathlib").Path(sys.argv[1]) / "minibatch", sampled, 0, edges,
                               {"item": np.random.rand(301, 24)})
    print(json.dumps({"importable": dgl_importable(), "backend": backend, "refused": refused,
                      "shape": list(emb.shape), "finite": bool(torch.isfinite(emb).all()),
                      "row0": float(emb[0].abs().sum()), "stage_backend": extra["backend"],
                      "minibatch": [by_batches["minibatch"], by_batches["backend"], by_batches["epochs"]],
                      "grads": all(p.grad is not None for p in model.encoder.layers[0].parameters())}))
""")


def test_native_path_runs_without_dgl(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # a tiny graph: one thread, no stalls on a shared machine
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["importable"] is False and out["backend"] == "native" and out["stage_backend"] == "native"
    assert "gnn.backend" in out["refused"]
    assert out["minibatch"] == [True, "native", 2]  # the native sampler where DGL is missing; 3 steps an epoch
    assert out["shape"] == [301, 16] and out["finite"] and out["row0"] == 0.0 and out["grads"]
    assert (tmp_path / "item_graph.npy").is_file() and (tmp_path / "probe.json").is_file()
