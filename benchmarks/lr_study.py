"""Learning-rate study: SpecOnsNet's step-5 error on the held-out trajectories against the peak learning rate of
the warm-up + cosine schedule, at a fixed number of optimizer steps, on fields files the workflow has written.

Each point is one ``mesodyn fit`` (the default config's SpecOnsNet run, seed 42, one thread) followed by one
``mesodyn evaluate``; the only keys changed are the ones printed in the table (budget, peak lr, warm-up = 5 % of
the budget, validation every 1/8 of it). The paper's SpecOnsNet step-5 error (arXiv 2605.16211, Table 1; the
authors' result file, kept in ``mesodyn/data/paper_table.csv``) is printed beside ours.

Run: ``python benchmarks/lr_study.py --data results/data --datasets fene kdv --steps 4000 --lr 1e-3 1e-2 3e-2``
(appends to ``benchmarks/results/lr_study.csv`` and rewrites ``lr_study.md``); ``--jobs 2`` runs two fits side
by side (one thread each), as the workflow does.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("dataset", "steps", "lr", "batch_size", "seed", "fit_seconds", "step1_heldout", "step5_heldout", "paper_step5",
           "ratio_step5")


def fit_and_evaluate(data: Path, model: str, run: Path, seed: int, overrides: dict[str, object]) -> dict:
    """One ``mesodyn fit`` (one thread) with ``--set KEY=VALUE`` for every item of ``overrides``, then one
    ``mesodyn evaluate``: the fit's wall seconds, its ``summary.json`` and the held-out mean errors at steps 1 and 5."""
    import json

    import xarray as xr

    sets = [item for key, value in overrides.items() for item in ("--set", f"{key}={value}")]
    exe = [sys.executable, "-m", "mesodyn.cli"]
    start = time.perf_counter()
    subprocess.run([*exe, "fit", str(data), "--model", model, "--out", str(run), "--seed", str(seed),
                    "--threads", "1", *sets], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    metrics = run.with_suffix(".nc")
    subprocess.run([*exe, "evaluate", str(run), str(data), "--out", str(metrics), "--threads", "1"], check=True,
                   capture_output=True)
    with xr.open_dataset(metrics) as m:
        mean = m["rel_rmse_mean"].sel(set="heldout")
        step1, step5 = float(mean.sel(step=1)), float(mean.sel(step=5))
    summary = json.loads((run / "summary.json").read_text())
    return {"fit_seconds": round(seconds, 1), "summary": summary, "step1_heldout": step1, "step5_heldout": step5}


def paper_step5(dataset: str, model: str) -> float:
    """The published mean step-5 error of ``model`` on ``dataset`` (NaN if the paper has none)."""
    from mesodyn.tables import paper_table

    paper = paper_table()
    row = paper[(paper["dataset"] == dataset) & (paper["model"] == model) & (paper["step"] == 5)]
    return float(row["mean"].iloc[0]) if len(row) else float("nan")


def run_points(points: list, measure, stem: Path, write, *, jobs: int) -> None:
    """``measure(point, work_dir)`` for every point, ``jobs`` at a time (one thread each). Each row is printed,
    appended to the rows already in ``stem.csv`` and ``write(rows, stem)`` rewrites the tables after every point,
    so an interrupted study keeps what it measured."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader(open(stem.with_suffix(".csv")))) if stem.with_suffix(".csv").exists() else []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool:
        for row in pool.map(lambda p: measure(p, Path(tmp)), points):
            print(row, flush=True)
            rows.append(row)
            write(rows, stem)


def one_point(data_dir: Path, dataset: str, steps: int, lr: float, batch: int, work: Path, seed: int = 42) -> dict:
    sets = {"max_epochs": steps, "lr": lr, "batch_size": batch, "warmup_epochs": max(1, steps // 20),
            "valid_every": max(1, steps // 8)}
    result = fit_and_evaluate(data_dir / f"{dataset}.nc", "speconsnet", work / f"{dataset}_{steps}_{lr:g}_{batch}_{seed}",
                              seed, {f"fit.datasets.{dataset}.{key}": value for key, value in sets.items()})
    ref = paper_step5(dataset, "speconsnet")
    return {"dataset": dataset, "steps": steps, "lr": lr, "batch_size": batch, "seed": seed,
            "fit_seconds": result["fit_seconds"], "step1_heldout": result["step1_heldout"],
            "step5_heldout": result["step5_heldout"], "paper_step5": ref, "ratio_step5": result["step5_heldout"] / ref}


def write_tables(rows: list[dict], stem: Path) -> None:
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, restval=42)  # rows from before the seed column: seed 42
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| data | steps | peak lr | batch | seed | fit s (1 thread) | step-1 error | step-5 error | paper step 5 | "
             "ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["dataset"], int(r["steps"]), float(r["lr"]), int(r.get("seed") or 42))):
        lines.append(f"| {r['dataset']} | {r['steps']} | {float(r['lr']):g} | {r['batch_size']} | {r.get('seed') or 42} | "
                     f"{float(r['fit_seconds']):.0f} | {float(r['step1_heldout']):.2e} | "
                     f"{float(r['step5_heldout']):.2e} | {float(r['paper_step5']):.2e} | "
                     f"{float(r['ratio_step5']):.2f}× |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("results/data"), help="folder of the fields files")
    parser.add_argument("--datasets", nargs="+", default=["fene"])
    parser.add_argument("--steps", nargs="+", type=int, default=[4000])
    parser.add_argument("--lr", nargs="+", type=float, default=[1e-3, 3e-3, 1e-2, 3e-2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "lr_study")
    args = parser.parse_args(argv)
    points = [(d, s, lr, seed) for d in args.datasets for s in args.steps for lr in args.lr for seed in args.seeds]
    run_points(points, lambda p, work: one_point(args.data, p[0], p[1], p[2], args.batch_size, work, p[3]),
               args.out, write_tables, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
