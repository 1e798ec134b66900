"""Time and peak memory of `esr build-graph`'s work, from a JSON Lines metadata file on disk to a saved graph.

Generated catalogues (10k, 100k and 1M items by default) have realistic
attribute distributions: brand and category popularity follow Zipf laws, brand
spellings vary (case, spacing, HTML entities, placeholders, empty), categories
are 3-4 level paths below a shared root given as lists (as in the raw 2018
dumps), and prices are strings ("$12.99", "12.99", "$1,299.00", ranges, junk,
empty). Each size runs in its own process, which reads the file with the
project's metadata reader, normalises, buckets, builds and saves graph.bin,
graph.json and edges.npz, then reports its timings; the parent reads the child's peak RSS. Usage:

    python benchmarks/build_graph_speed.py [--sizes 10000 100000 1000000] [--data DIR] [--json out.json]
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

import numpy as np

SYLLABLES = ["ka", "lo", "mi", "ra", "ve", "su", "to", "ne", "bi", "xo", "da", "pe", "qu", "zen", "or", "li"]
NOUNS = ["cream", "serum", "brush", "lotion", "polish", "spray", "kit", "set", "gel", "oil", "mask", "tool"]
ADJECTIVES = ["gentle", "daily", "pro", "classic", "ultra", "natural", "matte", "fresh", "deep", "soft"]
JUNK_PRICES = ["Click here to see price", "TBD", "$", '<span class="a-price">', "see site", "12,99 €", "free"]


def word(k: int, parts: int = 3) -> str:
    out = []
    for _ in range(parts):
        out.append(SYLLABLES[k % len(SYLLABLES)])
        k //= len(SYLLABLES)
    return "".join(out).capitalize()


def zipf_choice(rng: np.random.Generator, size: int, pool: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, pool + 1) ** exponent
    return rng.choice(pool, size=size, p=weights / weights.sum())


def brand_names(pool: int) -> list[str]:
    names = []
    for k in range(pool):
        name = f"{word(k)} {word(k * 7 + 3, 2)}" if k % 3 else word(k)
        if k % 13 == 0:
            name = f"{word(k)}&#39;s"  # HTML entities as in the real dumps
        names.append(name)
    return names


def brand_text(name: str, roll: float) -> str:
    if roll < 0.18:
        return ""
    if roll < 0.20:
        return "Unknown"
    if roll < 0.25:
        return name.upper()
    if roll < 0.27:
        return f"  {name} "
    return name


def category_paths(rng: np.random.Generator) -> list[list[str]]:
    paths = []
    for top in range(20):
        for mid in range(8):
            for leaf in range(6):
                base = ["Catalogue", f"{word(top, 2)} Goods", f"{word(mid + 40, 2)}", f"{word(leaf + 90, 2)} Items"]
                paths.append(base + ([f"{word(leaf + mid * 6, 2)} Extras"] if rng.random() < 0.3 else []))
    return paths


def price_text(price: float, roll: float) -> str:
    if roll < 0.18:
        return ""
    if roll < 0.20:
        return JUNK_PRICES[int(roll * 1e4) % len(JUNK_PRICES)]
    if roll < 0.25:
        return f"${price:,.2f} - ${price * 1.6:,.2f}"
    if roll < 0.35:
        return f"{price:.2f}"
    return f"${price:,.2f}"


def generate(path: Path, items: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    brands = brand_names(max(50, items // 25))
    brand_of = zipf_choice(rng, items, len(brands), 1.1)
    paths = category_paths(rng)
    path_of = zipf_choice(rng, items, len(paths), 1.0)
    prices = np.exp(rng.normal(np.log(15.0), 1.0, size=items))
    rolls = rng.random((items, 2))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for i in range(items):
            brand = brands[brand_of[i]]
            words = " ".join(ADJECTIVES[(i + k) % len(ADJECTIVES)] for k in range(3))
            record = {
                "asin": f"B{i:09d}",
                "title": f"{brand} {words} {NOUNS[i % len(NOUNS)]} no. {i % 997}",
                "brand": brand_text(brand, rolls[i, 0]),
                "price": price_text(float(prices[i]), rolls[i, 1]),
                "category": paths[path_of[i]],
                "description": [f"A {words} {NOUNS[(i * 7) % len(NOUNS)]} for every day. " * 3],
            }
            handle.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


def child(meta_path: str, out_dir: str) -> None:
    """Runs in its own process: read -> build -> save, then print timings and peak RSS as JSON."""
    start = time.perf_counter()
    import dgl  # noqa: F401  (imported up front so that "save" times the work, not the import)

    from esrgraph.config import MetadataConfig, MetadataFields
    from esrgraph.data.metadata import read_metadata
    from esrgraph.graph.build import build_graph_data
    from esrgraph.graph.config import GraphConfig
    from esrgraph.graph.io import save_graph

    imported, cpu_start = time.perf_counter(), time.process_time()
    cfg = MetadataConfig(path=meta_path, format="jsonl", key="asin", fields=MetadataFields(categories="category"))
    records, _ = read_metadata(cfg)
    read = time.perf_counter()
    built = build_graph_data(list(records.values()), GraphConfig(), True, meta_path)
    del records
    built_at = time.perf_counter()
    save_graph(Path(out_dir), built, {}, {"metadata": meta_path})
    saved = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - start,
                "read_s": read - imported,
                "build_s": built_at - read,
                "save_s": saved - built_at,
                "total_s": saved - imported,
                "cpu_s": time.process_time() - cpu_start,
                "rss_when_saved_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "nodes": built.edges.num_nodes,
                "edges": built.edges.num_edges(),
                "unparseable_prices": built.stats["prices"]["unparseable"],
            }
        )
    )


def measure(meta_path: Path, items: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="graph-bench-") as out:
        start = time.perf_counter()
        code, stdout, stderr, usage = run_child([sys.executable, __file__, "--child", str(meta_path), out])
        wall = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"benchmark child failed for {items:,} items:\n{stderr}")
        report = json.loads(stdout.strip().splitlines()[-1])
        report["bytes_saved"] = sum(f.stat().st_size for f in Path(out).iterdir())
    report.update(
        items=items, file_mib=meta_path.stat().st_size / 2**20, process_wall_s=wall, peak_rss_mib=usage.ru_maxrss / 1024
    )
    return report


def run_child(command: list[str]) -> tuple[int, str, str, resource.struct_rusage]:
    """Run ``command``; its exit code, output and its own resource usage over its whole life.

    ``os.wait4`` gives the usage of this one child (RUSAGE_CHILDREN would be the
    maximum over every child so far).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read().decode(), err.read().decode(), usage


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}"


def table(rows: list[dict]) -> str:
    lines = [
        "| items | file MiB | read s | build s | save s | file → saved graph s | (CPU s) | process wall s "
        "| peak RSS MiB | nodes | edges |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        nodes = sum(r["nodes"].values())
        cells = [f"{r['items']:,}", f"{r['file_mib']:.0f}"]
        cells += [f"{r[k]:.2f}" for k in ("read_s", "build_s", "save_s", "total_s", "cpu_s", "process_wall_s")]
        cells += [f"{r['peak_rss_mib']:.0f}", f"{nodes:,}", f"{r['edges']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "esr-graph-bench",
        help="where the generated catalogues are kept (reused when present)",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", nargs=2, metavar=("META", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    args.data.mkdir(parents=True, exist_ok=True)
    rows = []
    for items in sorted(args.sizes):
        path = args.data / f"catalogue-{items}.jsonl"
        if not path.is_file():
            generate(path, items)
        rows.append(measure(path, items))
    print(f"machine: {machine()}\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
