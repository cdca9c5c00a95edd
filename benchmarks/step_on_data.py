"""A training step and rollouts of the trained SpecOnsNet fits of a run, on their own data (1 CPU thread).

The synthetic windows of ``bench_models.py`` give a smooth, untrained ``F'`` whose interpolant needs the fewest bins;
a trained ``F'`` can be steep (FENE), and the cost of its verified table then dominates a step. This benchmark loads
the trained SpecOnsNet (seed 42) of each data set from a finished run (``--results``, default ``results/``) and
measures on that data set's fields, one thread, float32:

* a training step as :func:`mesodyn.training.fit` takes it (the config's train stepper; K = 3, or 5 for FPUT; 32
  windows of 11 frames from the first 200 trajectories; Adam with a learning rate of 1e-9, so that the weights, and
  with them the table, stay those of the trained model), minimum and median over ``--steps`` steps after three;
* the bins of the ``F'`` table of such a step and the seconds of its construction (median);
* rollouts without gradients of 50 trajectories over 10 frames with two substeps per frame, explicit Euler and AVF:
  milliseconds per frame (best of three).

Run ``python benchmarks/step_on_data.py [--results results] [--label now]``; writes
``benchmarks/results/step_on_data_<label>.md``. It uses public functions only, so it also measures an older
checkout (``PYTHONPATH=<old>/src python benchmarks/step_on_data.py --label before``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import xarray as xr

from bench_models import write_report  # (same folder)
from mesodyn.models import load_model
from mesodyn.onsager import interpolant
from mesodyn.training import adam, rollout_loss

DATASETS = ["allen_cahn", "kdv", "fput", "fene", "allen_cahn_2d"]
K = {"fput": 5}


def training_step(model, fields: torch.Tensor, *, steps: int, rollout_steps: int, batch: int) -> dict:
    model.train()
    gen = torch.Generator().manual_seed(0)
    optimizer = adam(model.parameters(), 1e-9)
    fits = []
    original = interpolant.choose_bins

    def timed(*args, **kwargs):
        start = time.perf_counter()
        chosen = original(*args, **kwargs)
        fits.append((time.perf_counter() - start, chosen[0] if chosen else None))
        return chosen

    interpolant.choose_bins = timed
    times = []
    try:
        for i in range(steps + 3):
            idx = torch.randint(0, fields.shape[0], (batch,), generator=gen)
            first = torch.randint(0, fields.shape[1] - 10, (batch,), generator=gen)
            windows = torch.stack([fields[n, s:s + 11] for n, s in zip(idx.tolist(), first.tolist())])
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = rollout_loss(model, windows, rollout_steps=rollout_steps)
            loss.backward()
            optimizer.step()
            if i >= 3:
                times.append(time.perf_counter() - start)
    finally:
        interpolant.choose_bins = original
    return {"step_ms_min": min(times) * 1e3, "step_ms_median": statistics.median(times) * 1e3,
            "table_bins": statistics.median(b for _, b in fits if b is not None) if fits else 0,
            "table_ms": statistics.median(t for t, _ in fits) * 1e3 if fits else 0.0}


def rollout_ms(model, u0: torch.Tensor, stepper: str) -> float:
    model.eval()
    best = float("inf")
    for _ in range(3):
        u = u0.clone()
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(10):
                for _ in range(2):
                    u = model.step(u, dt=model.dt / 2, stepper=stepper)
        best = min(best, time.perf_counter() - start)
    return best / 10 * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="the results folder of a finished run")
    parser.add_argument("--label", default="now")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = Path(args.results)
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.datasets:
        folder = results / "models" / name / "speconsnet" / "seed42"
        data = results / "data" / f"{name}.nc"
        if not (folder / "weights.pt").is_file() or not data.is_file():
            print(f"{name}: no trained SpecOnsNet or data under {results}; skipped", flush=True)
            continue
        model = load_model(folder).float()
        with xr.open_dataset(data) as ds:
            fields = torch.as_tensor(ds["u"].values[:200], dtype=torch.float32)
        batch = 4 if fields.ndim == 4 else 32
        row = {"data set": name, **training_step(model, fields, steps=args.steps, rollout_steps=K.get(name, 3),
                                                  batch=batch)}
        u0 = fields[:50 if fields.ndim == 3 else 10, 0]
        row["euler_ms_per_frame"] = rollout_ms(model, u0, "euler")
        row["avf_ms_per_frame"] = rollout_ms(model, u0, "avf")
        rows.append(row)
        print(row, flush=True)
    lines = [
        f"# Training step and rollouts of trained SpecOnsNet fits on their data ({args.label}, 1 thread)",
        "",
        f"`python benchmarks/step_on_data.py --results {args.results} --label {args.label}`; torch "
        f"{torch.__version__}, float32; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at "
        "the end. Step: batch 32 (2-D: 4) windows of 11 frames, K = 3 (FPUT 5), the config's train stepper. "
        "Rollouts: 50 trajectories (2-D: 10), 10 frames of two substeps.",
        "",
        "| data set | step ms (min) | step ms (median) | F' table bins | table ms | Euler ms/frame | AVF ms/frame |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['data set']} | {r['step_ms_min']:.2f} | {r['step_ms_median']:.2f} | {r['table_bins']:.0f} | "
                     f"{r['table_ms']:.2f} | {r['euler_ms_per_frame']:.2f} | {r['avf_ms_per_frame']:.2f} |")
    write_report(f"step_on_data_{args.label}", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
