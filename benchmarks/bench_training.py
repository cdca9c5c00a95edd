"""Training throughput of SpecOnsNet: samples (windows) per second of a full optimizer step.

One step is what :func:`mesodyn.training.fit` does per batch: the K-step rollout loss on a batch of windows
(11 frames, K = 3, so 8 starting states per window), backward, and an Adam update. Sizes are the paper's:
1-D 256 points, batch 32; 2-D 128², batch 8; float32. The authors' figures on this kind of machine
(``experiments.md`` §7) are given for comparison: ~51 samples/s (1-D, 2 threads), 8 / 52 s (2-D, 2 threads)
and 8 / 8.5 s (2-D with a tuned allocator).

Run ``python benchmarks/bench_training.py`` (``--threads 2`` by default); it writes
``benchmarks/results/training.md`` and ``training.csv`` (``--grids 1d --out training_1d`` for a quick 1-D run). CUDA rows are added when a GPU is present.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import resource
import time
from pathlib import Path

import torch

from mesodyn.onsager import SpecOnsNet
from mesodyn.training import adam, rollout_loss

RESULTS = Path(__file__).resolve().parent / "results"
AUTHORS = {1: (51.0, "0.62 s/step, 2 threads"), 2: (8 / 8.5, "8.5 s/step, 2 threads, tuned allocator")}


def smooth_windows(batch: int, shape: tuple[int, ...], *, window: int = 11, seed: int = 0) -> torch.Tensor:
    """Windows of slowly decaying random sine sums: the content does not change the cost, only realism."""
    gen = torch.Generator().manual_seed(seed)
    axes = [torch.arange(n) * 2 * math.pi / n for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    out = torch.zeros(batch, window, *shape)
    for _ in range(3):
        k = torch.randint(1, 6, (len(shape),), generator=gen)
        phase = 2 * math.pi * torch.rand(batch, 1, *([1] * len(shape)), generator=gen)
        arg = sum(ki * g for ki, g in zip(k, grids))
        decay = torch.exp(-0.01 * float((k**2).sum()) * torch.arange(window)).view(1, window, *([1] * len(shape)))
        out += torch.rand(batch, 1, *([1] * len(shape)), generator=gen) * torch.sin(arg + phase) * decay
    return out


def measure(shape, batch, *, stepper, device, repeats, warmup, rollout_steps=3, local_derivative="exact"):
    torch.manual_seed(0)
    model = SpecOnsNet(shape=shape, length=(2 * math.pi,) * len(shape), dt=1e-3, stepper=stepper,
                       local_derivative=local_derivative).to(device)
    optimizer = adam(model.parameters(), 1e-3)
    windows = smooth_windows(batch, shape).to(device)

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        loss = rollout_loss(model, windows, rollout_steps=rollout_steps)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):  # allocator, FFT plans, lazy initialisation
        one_step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - start)
    best = min(times)
    median = sorted(times)[len(times) // 2]
    return {"s_per_step_median": median, "s_per_step_best": best, "samples_per_s": batch / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats-1d", type=int, default=10)
    parser.add_argument("--repeats-2d", type=int, default=2)
    parser.add_argument("--steppers", nargs="+", default=["euler", "stabilized"])
    parser.add_argument("--local-derivative", nargs="+", choices=["exact", "interpolant"],
                        default=["exact", "interpolant"], help="how F' is evaluated (SpecOnsNet option)")
    parser.add_argument("--grids", nargs="+", choices=["1d", "2d"], default=["1d", "2d"])
    parser.add_argument("--out", default="training", help="stem of the files written to benchmarks/results/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        sizes = {"1d": (1, (256,), 32, args.repeats_1d), "2d": (2, (128, 128), 8, args.repeats_2d)}
        for ndim, shape, batch, repeats in (sizes[g] for g in args.grids):
            for stepper, local in ((s, d) for s in args.steppers for d in args.local_derivative):
                on_cpu = device.type == "cpu"
                stats = measure(shape, batch, stepper=stepper, device=device, repeats=repeats if on_cpu else 20,
                                warmup=(2 if ndim == 1 else 1) if on_cpu else 3, local_derivative=local)
                authors, note = AUTHORS[ndim]
                rows.append({
                    "grid": "x".join(map(str, shape)), "batch": batch, "K": 3, "stepper": stepper, "local_derivative": local,
                    "device": device.type if device.type == "cpu" else torch.cuda.get_device_name(device),
                    "threads": args.threads, **{k: round(v, 4) for k, v in stats.items()},
                    "authors_samples_per_s": round(authors, 3),
                    "speedup_vs_authors": round(stats["samples_per_s"] / authors, 1),
                })
                print(rows[-1], flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{args.out}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "# SpecOnsNet training throughput",
        "",
        "One optimizer step = K-step rollout loss (windows of 11 frames, K = 3) + backward + Adam, float32.",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads; peak resident memory of the whole run {peak:.0f} MiB.",
        f"Authors' code on this kind of machine: 1-D {AUTHORS[1][1]}; 2-D {AUTHORS[2][1]} (52 s untuned).",
        f"Load average (1 min) of the shared machine: {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores).",
        "Timing: median over repeats after warm-up steps (CPU: 2 in 1-D, 1 in 2-D); samples = windows.",
        "",
        "| grid | batch | stepper | F' | device | threads | s/step (median) | samples/s | authors samples/s | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['grid']} | {r['batch']} | {r['stepper']} | {r['local_derivative']} | {r['device']} | {r['threads']} | "
                     f"{r['s_per_step_median']:.4g} | {r['samples_per_s']:.4g} | {r['authors_samples_per_s']} | "
                     f"{r['speedup_vs_authors']}x |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
