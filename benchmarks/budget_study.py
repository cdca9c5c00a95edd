"""Budget study: what more training buys. SpecOnsNet's step-5 error on the held-out trajectories against the number
of optimizer steps (and the wall time of those steps), per data set.

Each budget is a separate run with the same recipe (warm-up then cosine decay to zero over the whole budget, so a
run of N steps is the best use of N steps that this recipe knows, not a snapshot of a longer run). The data are
the default config's (seed 0, generated in memory), the split and the metric those of the workflow: rollouts from
frame 0, relative RMSE, mean over the held-out test trajectories (never trained on), compared with the paper's
SpecOnsNet (arXiv 2605.16211, Table 1; the authors' result file).

The error against steps does not depend on the hardware (up to round-off), the wall time does: the table gives the
seconds per step measured in the run, and ``--cpu-seconds-per-step`` converts the steps to the time on another
machine (for example this project's 2-core CPU, from ``bench_onsager.py``).

Run: ``python benchmarks/budget_study.py --datasets allen_cahn kdv --budgets 2000 4000 8000`` (writes
``benchmarks/results/budget_<device>.csv`` and ``.md``); several data sets run as parallel processes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
# K of the loss per data set (the paper's) and the batch of the 2-D set
ROLLOUT = {"fput": 5}
BATCH_2D = 8
COLUMNS = ("dataset", "device", "steps", "batch_size", "schedule", "lr", "local_derivative", "seconds",
           "seconds_per_step", "step1_heldout", "step5_heldout", "paper_step5", "ratio_step5", "n_heldout",
           "best_epoch")


def make_data(name: str, n_samples: int | None, workers: int):
    """The default config's data set ``name`` (seed 0), in memory."""
    import yaml

    params = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["data"][name]
    if n_samples is not None:
        params = {**params, "n_samples": n_samples}
    if name in ("fput", "fene"):
        from mesodyn.chains.data import make_chain_data

        fields, _ = make_chain_data(name, params, seed=0, method="linear", n_grid=256, keep_micro=0, progress=False)
        return fields
    from mesodyn.continuum import make_dataset

    return make_dataset(name, params=params, seed=0, progress=False, workers=workers)


def one_run(data, name: str, steps: int, args) -> dict:
    import torch

    from mesodyn.evaluation import evaluate
    from mesodyn.models import load_model
    from mesodyn.tables import paper_table
    from mesodyn.training import TrainConfig, fit

    two_d = data["u"].ndim == 4
    train = TrainConfig(
        batch_size=BATCH_2D if two_d else args.batch_size, batches_per_epoch=1, max_epochs=steps,
        valid_every=max(1, steps // 10), early_stopping=1000, lr=args.lr, schedule=args.schedule,
        warmup_epochs=steps // 20, rollout_steps=ROLLOUT.get(name, 3), device=args.device, seed=args.seed,
        split=(0.85, 0.05, 0.1) if two_d else (0.7, 0.2, 0.1),
    )
    model = {"name": "speconsnet", "local_derivative": args.local_derivative}
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = fit(data, model_config=model, train=train, out_dir=out, progress=False)
        seconds = time.perf_counter() - start
        fitted = load_model(out, device=str(result.device), dtype=torch.float32)
        metrics = evaluate(fitted, data, split=result.split, device=str(result.device), dataset=name)
    mean = metrics["rel_rmse_mean"].sel(set="heldout")
    paper = paper_table()
    row = paper[(paper["dataset"] == name) & (paper["model"] == "speconsnet") & (paper["step"] == 5)]
    paper5 = float(row["mean"].iloc[0]) if len(row) else math.nan
    step5 = float(mean.sel(step=5))
    return {
        "dataset": name, "device": str(result.device), "steps": steps, "batch_size": train.batch_size,
        "schedule": args.schedule, "lr": args.lr, "local_derivative": args.local_derivative,
        "seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps, 5),
        "step1_heldout": float(mean.sel(step=1)), "step5_heldout": step5, "paper_step5": paper5,
        "ratio_step5": step5 / paper5, "n_heldout": int(metrics["n_trajectories"].sel(set="heldout")),
        "best_epoch": result.best_epoch,
    }


def paper_epochs(data, name: str, args) -> dict:
    """Seconds per epoch of the paper's own recipe (exact F', batch 32, 8 in 2-D, an epoch a full pass)."""
    from mesodyn.training import TrainConfig, fit

    two_d = data["u"].ndim == 4
    n = args.paper_epochs
    train = TrainConfig(batch_size=BATCH_2D if two_d else 32, max_epochs=n, valid_every=n, device=args.device,
                        rollout_steps=ROLLOUT.get(name, 3), split=(0.85, 0.05, 0.1) if two_d else (0.7, 0.2, 0.1))
    with tempfile.TemporaryDirectory() as out:
        fit(data, model_config={"name": "speconsnet"}, train=train, out_dir=out, progress=False)  # warm-up
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = fit(data, model_config={"name": "speconsnet"}, train=train, out_dir=out, progress=False)
        seconds = time.perf_counter() - start
    n_train = len(result.split["train"])
    row = {"dataset": name, "device": str(result.device), "paper_recipe_epochs": n,
           "steps_per_epoch": max(1, n_train // train.batch_size), "seconds_per_epoch": round(seconds / n, 3)}
    print(json.dumps(row), flush=True)
    return row


def study(name: str, args) -> list[dict]:
    import torch

    torch.set_num_threads(args.threads)
    data = make_data(name, args.samples_2d if name.endswith("_2d") else args.samples, args.threads)
    if args.paper_epochs:
        paper_epochs(data, name, args)
    rows = []
    for steps in args.budgets:
        row = one_run(data, name, steps, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["allen_cahn", "kdv", "fput", "fene"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[2000, 4000, 8000])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--schedule", choices=["cosine", "plateau"], default="cosine")
    parser.add_argument("--local-derivative", choices=["exact", "interpolant"], default="interpolant")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--samples", type=int, default=None, help="trajectories of 1-D sets (default config's)")
    parser.add_argument("--samples-2d", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per data set (one process each)")
    parser.add_argument("--workers", type=int, default=None, help="parallel data sets (default: all)")
    parser.add_argument("--paper-epochs", type=int, default=0,
                        help="also time this many epochs of the paper's recipe (exact F', full passes)")
    parser.add_argument("--out", default=None, help="output stem (default benchmarks/results/budget_<device>)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MESODYN_GIT_COMMIT", "budget-study")
    with ProcessPoolExecutor(max_workers=args.workers or len(args.datasets)) as pool:
        futures = [pool.submit(study, name, args) for name in args.datasets]
        rows = [row for future in futures for row in future.result()]
    device = rows[0]["device"] if rows else "none"
    stem = Path(args.out) if args.out else RESULTS / f"budget_{device}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| data | steps | s/step | step-1 | step-5 | paper step-5 | ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['steps']} | {r['seconds_per_step']:.4f} | {r['step1_heldout']:.3g} | "
                     f"{r['step5_heldout']:.3g} | {r['paper_step5']:.3g} | {r['ratio_step5']:.2f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
