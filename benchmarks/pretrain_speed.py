"""Seconds per epoch of `esr pretrain-gnn` for each available backend and device.

One epoch = both augmented views through the encoder, the full contrastive
loss over every item, backward and the optimiser step (the default `gnn`
settings unless --negatives / --item-input say otherwise). With --minibatch
an epoch is one step per batch of --seed-batch-size seed items, every item a
seed once, on neighbourhoods sampled with --fanouts (the backend's sampler:
DGL's with dgl, the native one with native); --inference also times the
whole-graph item embeddings the stage writes after training. Graphs: generated
ones (Zipf-distributed brand and category popularity, 5 price buckets) of
10k, 100k and 1M items, plus the shared datasets when their graphs can be
built here (needs DGL and ../shared/data) or are given as edges.npz files.
Each case runs in a fresh process so its peak memory is its own: peak RSS on
a CPU, torch.cuda.max_memory_allocated on a GPU. Needs no DGL and no install:

    PYTHONPATH=. python benchmarks/pretrain_speed.py [--sizes 10000 100000 1000000]
        [--edges beauty=/path/graph/edges.npz] [--no-datasets] [--devices cpu cuda]
        [--backends dgl native] [--epochs 3] [--json out.json] [--markdown out.md]
        [--minibatch [--fanouts 10] [--seed-batch-size 1024]] [--inference]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASET_CONFIGS = {
    "amazon-scientific": ROOT / "configs" / "amazon-scientific.yaml",
    "amazon-beauty": ROOT / "configs" / "amazon-beauty.yaml",
}


# ----------------------------------------------------------------- one case (child process)


def run_case(case: dict) -> dict:
    import numpy as np
    import torch

    from esrgraph.gnn.config import GnnConfig
    from esrgraph.gnn.encoder import item_embeddings
    from esrgraph.gnn.model import ContrastiveModel, build_encoder
    from esrgraph.gnn.synthetic import synthetic_edges
    from esrgraph.gnn.tensors import GraphTensors
    from esrgraph.gnn.train import pretraining_loop
    from esrgraph.graph.edges import HeteroEdges

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    edges = HeteroEdges.load(Path(case["edges"])) if "edges" in case else synthetic_edges(case["items"], seed=0)
    device = torch.device(case["device"])
    minibatch = case.get("minibatch", False)
    cfg = GnnConfig(
        negatives=case["negatives"],
        item_input=case["item_input"],
        minibatch=minibatch,
        fanouts=case.get("fanouts", [10]),
        seed_batch_size=case.get("seed_batch_size", 1024),
    )
    graph = GraphTensors.from_edges(edges, device)
    n_nodes = edges.num_nodes["item"]
    torch.manual_seed(0)
    features = None
    if cfg.item_input == "llm":  # random unit vectors cost the same as the real LLM item embeddings
        x = torch.randn(n_nodes, 384)
        features = {"item": x.div_(x.norm(dim=1, keepdim=True))}  # in place: no second [N, 384] copy
    model = ContrastiveModel(build_encoder(cfg, graph, case["backend"], features), cfg.projection).to(device)
    loop = pretraining_loop(model, graph, cfg, minibatch=minibatch)  # the optimiser steps the pretraining takes
    steps = loop.task.steps_per_epoch if minibatch else 1

    def timed_epoch(epoch: int) -> float:
        start = time.perf_counter()
        if minibatch:
            loop.train_epoch(epoch)
        else:
            loop.step(graph)  # reads the loss back: the time is the real step time on any device
        return time.perf_counter() - start

    if minibatch:  # a few steps warm up; a whole epoch would only repeat them
        for seeds in loop.task.batches(0)[: case["warmup"] * 3]:
            loop.step(seeds)
    else:
        for _ in range(case["warmup"]):
            timed_epoch(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = [timed_epoch(e + 1) for e in range(case["epochs"])]
    per_epoch = float(np.median(seconds))
    peak, peak_kind = _peak_bytes(device), "cuda max allocated" if device.type == "cuda" else "peak RSS"
    extra = {}
    if case.get("inference"):
        start = time.perf_counter()
        item_embeddings(model.encoder, graph)
        extra["inference_seconds"] = round(time.perf_counter() - start, 3)
        extra["peak_with_inference_bytes"] = _peak_bytes(device)
    return {
        **case,
        **extra,
        "steps_per_epoch": steps,
        "seconds_per_step": round(per_epoch / steps, 4),
        "items": n_nodes - 1,
        "edges_total": edges.num_edges(),
        "seconds_per_epoch": round(per_epoch, 4),
        "epoch_seconds": [round(s, 4) for s in seconds],
        "edges_per_second": round(edges.num_edges() / per_epoch),
        "items_per_second": round((n_nodes - 1) / per_epoch),
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": peak_kind,
        "threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------- driver


def _peak_bytes(device) -> int:
    """The most memory the run has held so far: CUDA's allocator peak, else the process's peak RSS."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def available_devices(wanted: list[str]) -> list[str]:
    import torch

    return [d for d in wanted if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]


def backend_usable(backend: str, device: str) -> str | None:
    """None when usable, else the reason it is skipped."""
    if backend == "native":
        return None
    import torch

    from esrgraph.gnn.backends import dgl_importable

    if not dgl_importable():
        return "dgl cannot be imported"
    from esrgraph.gnn.dgl_backend import supports

    return None if supports(torch.device(device)) else f"this DGL build does not run on {device}"


def dataset_edges(names: list[str], workdir: Path) -> tuple[dict[str, str], list[str]]:
    """Build the shared datasets' graphs with the graph stage; (name -> edges.npz, skip notes)."""
    notes, paths = [], {}
    try:
        import dgl  # noqa: F401  (the graph stage writes a DGL graph)

        from esrgraph.config import load_config
        from esrgraph.pipeline import ensure
        from esrgraph.runs import Run
    except Exception as exc:  # no DGL, or a broken install: the datasets need pre-built edges.npz files
        return {}, [
            f"shared datasets skipped: cannot build graphs here ({type(exc).__name__}: {exc}); "
            "pass --edges NAME=edges.npz"
        ]
    for name in names:
        cfg_path = DATASET_CONFIGS[name]
        try:
            run = Run(load_config(cfg_path, [f"run.root={workdir}", "gnn.item_input=id"]))
            paths[name] = str(ensure(run, "graph") / "edges.npz")
        except Exception as exc:  # missing data files are reported, not fatal
            notes.append(f"{name} skipped: {type(exc).__name__}: {exc}")
    return paths, notes


def run_child(case: dict, timeout: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--case", json.dumps(case)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {**case, "error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**case, "error": " | ".join(tail)}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


def machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "torch_threads": torch.get_num_threads(),
        "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    try:
        import dgl

        info["dgl"] = dgl.__version__
    except Exception:
        info["dgl"] = "not importable"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        return None


def markdown(results: list[dict], info: dict, notes: list[str]) -> str:
    lines = [
        f"Machine: {info['cpu']}, {info['cpu_count']} cores, {info['memory_gib']} GiB RAM; "
        f"GPU: {info['cuda'] or 'none'}; torch {info['torch']}, dgl {info['dgl']}.",
        "",
        "| graph | items | edges | backend | device | threads | steps | s / epoch | edges / s | items / s "
        "| peak memory |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['graph']} | | | {r['backend']} | {r['device']} | | | failed: {r['error']} | | | |")
            continue
        kind = "RSS" if r["peak_memory_kind"] == "peak RSS" else "CUDA"
        lines.append(
            f"| {r['graph']} | {r['items']:,} | {r['edges_total']:,} | {r['backend']} | {r['device']} | "
            f"{r['threads'] if r['device'] == 'cpu' else ''} | {r['steps_per_epoch']} | "
            f"{r['seconds_per_epoch']:.3f} | {r['edges_per_second']:,} | {r['items_per_second']:,} | "
            f"{r['peak_memory_bytes'] / 2**30:.2f} GiB {kind} |"
        )
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000], help="generated graphs, items"
    )
    parser.add_argument("--edges", nargs="*", default=[], metavar="NAME=PATH", help="pre-built edges.npz files")
    parser.add_argument("--no-datasets", action="store_true", help="do not build the shared datasets' graphs")
    parser.add_argument("--datasets", nargs="*", default=list(DATASET_CONFIGS), choices=list(DATASET_CONFIGS))
    parser.add_argument("--devices", nargs="*", default=["cpu", "cuda"])
    parser.add_argument("--backends", nargs="*", default=["dgl", "native"])
    parser.add_argument("--negatives", default="in-batch", choices=["in-batch", "exact"])
    parser.add_argument("--item-input", default="llm", choices=["llm", "id"])
    parser.add_argument("--minibatch", action="store_true", help="mini-batch epochs (gnn.minibatch=true)")
    parser.add_argument("--fanouts", type=int, nargs="*", default=[10], help="gnn.fanouts with --minibatch")
    parser.add_argument("--seed-batch-size", type=int, default=1024, help="gnn.seed_batch_size with --minibatch")
    parser.add_argument("--inference", action="store_true", help="also time the whole-graph item embeddings")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per case")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return

    info, notes = machine(), []
    graphs = [(f"generated {n:,}", {"items": n}) for n in args.sizes]
    with tempfile.TemporaryDirectory(prefix="pretrain-speed-") as workdir:
        built, skipped = ({}, []) if args.no_datasets else dataset_edges(args.datasets, Path(workdir))
        notes += skipped
        given = dict(item.split("=", 1) for item in args.edges)
        graphs += [(name, {"edges": path}) for name, path in {**built, **given}.items()]
        devices = available_devices(args.devices)
        notes += [f"{d}: not available on this machine, not measured" for d in args.devices if d not in devices]
        results = []
        for device in devices:
            for backend in args.backends:
                reason = backend_usable(backend, device)
                if reason:
                    notes.append(f"{backend} on {device}: skipped ({reason})")
                    continue
                for name, source in graphs:
                    case = {
                        "graph": name,
                        **source,
                        "backend": backend,
                        "device": device,
                        "epochs": args.epochs,
                        "warmup": args.warmup,
                        "negatives": args.negatives,
                        "item_input": args.item_input,
                        "threads": args.threads,
                        "inference": args.inference,
                    }
                    if args.minibatch:
                        case.update(minibatch=True, fanouts=args.fanouts, seed_batch_size=args.seed_batch_size)
                    result = run_child(case, args.timeout)
                    results.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
    report = {
        "machine": info,
        "settings": {
            "negatives": args.negatives,
            "item_input": args.item_input,
            "epochs": args.epochs,
            "warmup": args.warmup,
            "minibatch": args.minibatch,
            **({"fanouts": args.fanouts, "seed_batch_size": args.seed_batch_size} if args.minibatch else {}),
        },
        "results": results,
        "notes": notes,
    }
    table = markdown(results, info, notes)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table)


if __name__ == "__main__":
    main()
