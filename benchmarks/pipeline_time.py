"""The whole default pipeline on one dataset: wall time and peak RSS per stage, as a newcomer runs it.

Each stage runs as its own ``esr`` command in a child process, in a fresh run
folder (nothing reused: the texts are encoded, the graph built, the model
trained to its early stop and evaluated). Data whose items carry no
attribute have no graph; their graph stages are recorded as skipped, as
``esr pipeline`` skips them.

    python benchmarks/pipeline_time.py configs/amazon-health.yaml --json benchmarks/results/pipeline.json \\
        [-o train.seeds=[1] ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import STAGES as TRAINING_STAGES  # noqa: E402
from scale import run_stage  # noqa: E402

STAGES = (*TRAINING_STAGES, "evaluate")
NO_GRAPH = "no usable attribute"  # build-graph's error where no item keeps an attribute (NoAttributeError)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("-o", dest="overrides", action="append", default=[], help="KEY=VALUE, as for esr")
    parser.add_argument("--name", default=f"pipeline-time-{int(time.time())}", help="run.name (a fresh folder)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="each stage's log (default: /tmp/<name>)")
    args = parser.parse_args()
    overrides = (*args.overrides, f"run.name={args.name}")
    logs = args.logs or Path("/tmp") / args.name
    logs.mkdir(parents=True, exist_ok=True)
    stages, graph = [], True
    for stage in STAGES:
        if stage == "pretrain-gnn" and not graph:
            stages.append({"stage": stage, "skipped": "no graph"})
            continue
        row = run_stage(stage, args.config.resolve(), overrides, logs)
        if stage == "build-graph" and not row["ok"] and NO_GRAPH in row.get("error", ""):
            skipped = row.pop("error")
            row, graph = {**row, "ok": True, "skipped": skipped}, False
        stages.append(row)
        print(f"  {row}", flush=True)
        if not row["ok"]:
            break
    total = sum(s.get("seconds", 0) for s in stages)
    report = {
        "config": str(args.config),
        "overrides": list(args.overrides),
        "machine": platform.platform(),
        "cores": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "stages": stages,
        "seconds": round(total, 1),
        "peak_rss_gib": max((s.get("peak_rss_gib", 0) for s in stages), default=0),
    }
    print(f"whole pipeline: {total:.0f} s, peak RSS {report['peak_rss_gib']} GiB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
