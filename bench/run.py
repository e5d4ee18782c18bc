"""`make bench`: run the benchmarks, print figures with ratios, record them in results.json and docs/benchmarks.md.

`python bench/run.py [--quick] [--only=NAME ...]`: --quick uses small sizes to check the harness (nothing is
recorded); --only runs some benchmarks and updates just their entries.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

import cls_bench
import data_bench
import eval_bench
import gpu_bench
import serve_bench
import train_bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024**2
    return f"{os.cpu_count()} cores ({cpu}), {memory} GiB RAM, {platform.system()}, Python {platform.python_version()}"


def main() -> None:
    quick = "--quick" in sys.argv
    only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")]
    os.environ.setdefault("TUNELAB_PROGRESS", "0")
    print(f"machine: {machine()}")
    benchmarks = {
        "data_pipeline": lambda: data_bench.bench_pipeline((10_000,) if quick else (100_000, 1_000_000)),
        "data_near_dedup": lambda: data_bench.bench_near_dedup((10_000,) if quick else (100_000, 1_000_000),
                                                               (10_000,) if quick else (100_000,)),
        "data_pii": lambda: data_bench.bench_pii(500 if quick else 20_000),
        "train_sft": lambda: train_bench.bench_sft(quick),
        "train_sft_seeds": lambda: train_bench.bench_sft(quick, seeds=(1, 2)),
        "train_classification": lambda: cls_bench.bench_classification(quick),
        "eval_classification": lambda: eval_bench.bench_classification(quick),
        "eval_generation": lambda: eval_bench.bench_generation(quick),
        "serve": lambda: serve_bench.bench(quick),
    }
    if gpu_bench.torch.cuda.is_available():  # kept from the last GPU machine otherwise
        benchmarks["train_sft_gpu"] = lambda: gpu_bench.bench("smollm2-135m", False, 5 if quick else 60, 32)
    figures = {name: run() for name, run in benchmarks.items() if not only or name in only}
    if quick:
        return
    stamp = {"date": date.today().isoformat(), "machine": machine()}
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update({name: {**stamp, **value} for name, value in figures.items()})
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    DOC.write_text(render(results))
    print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")


def render(results: dict) -> str:
    lines = ["# Benchmarks", "",
             "Written by `make bench` (bench/run.py) from `bench/results.json`; do not edit by hand.",
             "Ratios compare with a peer measured in the same run, on the same machine and data.", ""]
    for name, entry in results.items():
        lines += [f"## {name}", "", f"{entry['date']}, {entry['machine']}", "", f"Setting: {entry['setting']}", ""]
        rows = entry.get("sizes") or {k: v for k, v in entry.items() if isinstance(v, dict)}
        keys = sorted({k for row in rows.values() for k in row})
        lines += ["| case | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        lines += [f"| {case} | " + " | ".join(f"{row.get(k, '')}" for k in keys) + " |" for case, row in rows.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
