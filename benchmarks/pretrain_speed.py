"""Seconds per epoch of `esr pretrain-gnn` for each available backend and device.

One epoch = both augmented views through the encoder, the full contrastive
loss over every item, backward and the optimiser step (the default `gnn`
settings unless --negatives / --item-input say otherwise). Graphs: generated
ones (Zipf-distributed brand and category popularity, 5 price buckets) of
10k, 100k and 1M items, plus the shared datasets when their graphs can be
built here (needs DGL and ../shared/data) or are given as edges.npz files.
Each case runs in a fresh process so its peak memory is its own: peak RSS on
a CPU, torch.cuda.max_memory_allocated on a GPU. Needs no DGL and no install:

    PYTHONPATH=. python benchmarks/pretrain_speed.py [--sizes 10000 100000 1000000]
        [--edges beauty=/path/graph/edges.npz] [--no-datasets] [--devices cpu cuda]
        [--backends dgl native] [--epochs 3] [--json out.json] [--markdown out.md]
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
    from esrgraph.gnn.model import ContrastiveModel, build_encoder
    from esrgraph.gnn.synthetic import synthetic_edges
    from esrgraph.gnn.tensors import GraphTensors
    from esrgraph.gnn.train import pretraining_loop
    from esrgraph.graph.edges import HeteroEdges

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    edges = HeteroEdges.load(Path(case["edges"])) if "edges" in case else synthetic_edges(case["items"], seed=0)
    device = torch.device(case["device"])
    cfg = GnnConfig(negatives=case["negatives"], item_input=case["item_input"])
    graph = GraphTensors.from_edges(edges, device)
    n_nodes = edges.num_nodes["item"]
    torch.manual_seed(0)
    features = None
    if cfg.item_input == "llm":  # random unit vectors cost the same as the real LLM item embeddings
        features = {"item": torch.nn.functional.normalize(torch.randn(n_nodes, 384), dim=1)}
    model = ContrastiveModel(build_encoder(cfg, graph, case["backend"], features), cfg.projection).to(device)
    loop = pretraining_loop(model, graph, cfg)  # the optimiser step the pretraining takes

    def timed_step() -> float:
        start = time.perf_counter()
        loop.step(graph)  # reads the loss back: the time is the real step time on any device
        return time.perf_counter() - start

    for _ in range(case["warmup"]):
        timed_step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = [timed_step() for _ in range(case["epochs"])]
    per_epoch = float(np.median(seconds))
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "cuda max allocated"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak RSS"
    return {
        **case,
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
        "| graph | items | edges | backend | device | threads | s / epoch | edges / s | items / s | peak memory |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['graph']} | | | {r['backend']} | {r['device']} | | failed: {r['error']} | | | |")
            continue
        kind = "RSS" if r["peak_memory_kind"] == "peak RSS" else "CUDA"
        lines.append(
            f"| {r['graph']} | {r['items']:,} | {r['edges_total']:,} | {r['backend']} | {r['device']} | "
            f"{r['threads'] if r['device'] == 'cpu' else ''} | {r['seconds_per_epoch']:.3f} | "
            f"{r['edges_per_second']:,} | {r['items_per_second']:,} | "
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
                    }
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
