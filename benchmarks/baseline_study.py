"""Baseline study: what a baseline's held-out step-5 error gains from a higher learning rate or an early stop.

The default config gives the baselines (FNO, OnsagerNet, Res-OnsagerNet of arXiv 2605.16211) small fixed budgets,
because a step of theirs costs 1.4-35x a SpecOnsNet step on a CPU (``docs/budget.md``). This study asks whether
that budget decides the comparison with SpecOnsNet. Each point is one ``mesodyn fit`` of a run of the default
config (seed 42, one thread) with only the printed keys of its own ``fit.models.<run>.train`` changed, then one
``mesodyn evaluate``:

- ``budget``: the config's own budget (warm-up + cosine) at the peak rate ``--lr``;
- ``early``: a constant rate ``--lr`` (the plateau schedule), validation every ``--valid-every`` steps, stop after
  ``--patience`` validations without improvement (best weights kept), at most ``--cap`` steps.

The published step-5 error of the same baseline (the authors' result file, ``mesodyn/data/paper_table.csv``) and
SpecOnsNet's are printed for scale. Run:
``python benchmarks/baseline_study.py --data results/data --datasets fput --models onsagernet res_onsagernet
--mode early`` (appends to ``benchmarks/results/baseline_study.csv`` and rewrites ``baseline_study.md``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from lr_study import RESULTS, fit_and_evaluate, paper_step5, run_points

COLUMNS = ("dataset", "model", "mode", "lr", "seed", "steps", "stop_reason", "best_step", "fit_seconds",
           "step5_heldout", "paper_step5")


def one_point(data_dir: Path, dataset: str, model: str, mode: str, lr: float, work: Path, args) -> dict:
    key = f"fit.models.{model}.train"
    overrides = {f"{key}.lr": lr}
    if mode == "early":
        overrides.update({f"{key}.schedule": "plateau", f"{key}.warmup_epochs": 0, f"{key}.max_epochs": args.cap,
                          f"{key}.valid_every": args.valid_every, f"{key}.early_stopping": args.patience})
    result = fit_and_evaluate(data_dir / f"{dataset}.nc", model, work / f"{dataset}_{model}_{mode}_{lr:g}", args.seed,
                              overrides)
    summary = result["summary"]
    return {"dataset": dataset, "model": model, "mode": mode, "lr": lr, "seed": args.seed,
            "steps": summary["epochs"], "stop_reason": summary["stop_reason"], "best_step": summary["best_epoch"],
            "fit_seconds": result["fit_seconds"], "step5_heldout": result["step5_heldout"],
            "paper_step5": paper_step5(dataset, model)}


def write_tables(rows: list[dict], stem: Path) -> None:
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| data | model | training | lr | steps (best) | stopped by | fit s (1 thread) | step-5 error (held out) "
             "| published step 5 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["model"], r["mode"], float(r["lr"]))):
        lines.append(f"| {r['dataset']} | {r['model']} | {r['mode']} | {float(r['lr']):g} | {r['steps']} "
                     f"({r['best_step']}) | {r['stop_reason']} | {float(r['fit_seconds']):.0f} | "
                     f"{float(r['step5_heldout']):.2e} | {float(r['paper_step5']):.2e} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("results/data"), help="folder of the fields files")
    parser.add_argument("--datasets", nargs="+", default=["fput"])
    parser.add_argument("--models", nargs="+", default=["onsagernet", "res_onsagernet"])
    parser.add_argument("--mode", choices=("budget", "early"), default="early")
    parser.add_argument("--lr", nargs="+", type=float, default=[3e-3])
    parser.add_argument("--cap", type=int, default=3000, help="early: most optimizer steps")
    parser.add_argument("--valid-every", type=int, default=21, help="early: steps between validations")
    parser.add_argument("--patience", type=int, default=5, help="early: validations without improvement")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "baseline_study")
    args = parser.parse_args(argv)
    points = [(d, m, lr) for d in args.datasets for m in args.models for lr in args.lr]
    run_points(points, lambda p, work: one_point(args.data, p[0], p[1], args.mode, p[2], work, args), args.out,
               write_tables, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
