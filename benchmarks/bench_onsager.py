"""SpecOnsNet training speed: our closed-form derivatives against plain autograd, in one run.

What is timed is the forward and backward pass of :func:`mesodyn.training.rollout_loss` (windows of 11 frames,
K = 3 steps, explicit Euler, float32) on the CPU, for the paper's sizes: 1-D 256 points, batch 32; 2-D 128², batch
8. The optimizer update is left out (it is the same for both and tiny); ``bench_training.py`` times full
optimizer steps.

Three implementations of the *same* model with the same weights on the same batch:

* ``exact``: :class:`mesodyn.onsager.SpecOnsNet` as trained by default (``F'`` by a chunked closed-form
  autograd Function at every grid point, ``V_nl``'s gradient by a hand-written adjoint);
* ``interpolant``: the same with ``local_derivative="interpolant"`` (``F'`` from exact values at a few hundred
  nodes through a piecewise polynomial whose error is measured at every call, :mod:`mesodyn.onsager.interpolant`);
* ``autograd``: the authors' approach, ``mu = dV/du`` by ``torch.autograd.grad(V, u, create_graph=True)``
  inside every step and the loss back-propagated through it (double backward).

Each (case, implementation) runs in its own subprocess, so that its peak resident memory (``ru_maxrss``) is
its own; the first step's loss and gradient norms are compared (they must agree to float32 round-off). Samples are windows. Run::

    python benchmarks/bench_onsager.py            # --threads 2 by default

It writes ``benchmarks/results/onsager.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from bench_training import smooth_windows  # noqa: E402  (same windows as the training benchmark)

CASES = {"1d": ((256,), 32), "2d": ((128, 128), 8)}
# The authors' code on this kind of machine (experiments.md section 7), samples (windows) per second.
AUTHORS = {"1d": (32 / 0.62, "0.62 s per batch-32 step, 2 threads"),
           "2d": (8 / 8.5, "8.5 s per batch-8 step, 2 threads, tuned allocator (52 s untuned)")}
TARGET_FACTOR = 10.0


class AutogradReference(torch.nn.Module):
    """The same model stepped the authors' way: ``mu`` by autograd with ``create_graph=True``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def step(self, u: torch.Tensor) -> torch.Tensor:
        m = self.model
        u = u.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(m.energy(u)["total"].sum(), u, create_graph=True)
        return u - m.dt * m.operators.apply(grad / m.grid.cell_volume)


def worker(case: str, impl: str, *, threads: int, repeats: int, warmup: int, batch: int) -> dict:
    from mesodyn.onsager import SpecOnsNet
    from mesodyn.training import rollout_loss

    torch.set_num_threads(threads)
    shape, _ = CASES[case]
    torch.manual_seed(0)
    model = SpecOnsNet(shape=shape, length=(2 * math.pi,) * len(shape), dt=1e-3, stepper="euler",
                       local_derivative="interpolant" if impl == "interpolant" else "exact")
    windows = smooth_windows(batch, shape)
    net = AutogradReference(model) if impl == "autograd" else model
    params = list(model.parameters())

    def one() -> tuple[float, list[float]]:
        for p in params:
            p.grad = None
        loss = rollout_loss(net, windows, rollout_steps=3)
        loss.backward()
        return float(loss.detach()), [float(p.grad.norm()) for p in params]

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, first = [], None
    for i in range(warmup + repeats):
        start = time.perf_counter()
        out = one()
        elapsed = time.perf_counter() - start
        first = first or out
        if i >= warmup:
            times.append(elapsed)
    times.sort()
    return {"case": case, "impl": impl, "batch": batch, "threads": threads, "times": times,
            "median_s": times[len(times) // 2], "loss": first[0], "grad_norms": first[1],
            "rss_before_mib": rss_before, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_worker(case: str, impl: str, args, batch: int) -> dict:
    repeats = args.repeats_1d if case == "1d" else args.repeats_2d
    cmd = [sys.executable, __file__, "--worker", case, impl, "--threads", str(args.threads),
           "--repeats", str(repeats), "--warmup", str(1), "--batch", str(batch)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in result.items() if k != "grad_norms"}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats-1d", type=int, default=5)
    parser.add_argument("--repeats-2d", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--ref-batch-2d", type=int, default=1,
                        help="batch (windows) of the autograd reference in 2-D; its double-backward graph holds "
                             "~2.6 GiB per window on 128^2 (the full batch 8 would need ~21 GiB), so the default "
                             "is 1 and samples/s are compared per window")
    parser.add_argument("--output", type=Path, default=RESULTS / "onsager.md")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        case, impl = args.worker
        print(json.dumps(worker(case, impl, threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                                batch=args.batch)))
        return

    rows = []
    for case in args.cases:
        shape, batch = CASES[case]
        ref_batch = min(args.ref_batch_2d, batch) if case == "2d" else batch
        runs = {impl: run_worker(case, impl, args, batch if impl != "autograd" else ref_batch)
                for impl in ("exact", "interpolant", "autograd")}
        # Same batch: loss and gradient norms must agree to float32 round-off (atol relative to the largest
        # norm: a parameter whose gradient nearly cancels, such as W's at initialization, is compared at the
        # round-off of the others).
        checks = [("interpolant", "exact")] + ([("exact", "autograd")] if ref_batch == batch else [])
        agree = {pair: _agree(runs[pair[0]], runs[pair[1]]) for pair in checks}
        rows.append({"case": case, "grid": "x".join(map(str, shape)), "batch": batch, "ref_batch": ref_batch,
                     "runs": runs, "agree": agree})

    lines = [
        "# SpecOnsNet training speed: exact closed-form F', verified interpolant of F', plain autograd",
        "",
        "Forward + backward of the K-step rollout loss (windows of 11 frames, K = 3, explicit Euler, float32),",
        f"CPU, {args.threads} threads; {platform.machine()}, torch {torch.__version__}. Each implementation runs in its",
        "own process (median and best over repeats after one warm-up step; peak = `ru_maxrss` of that process, baseline",
        "= before the first step). `exact` = SpecOnsNet's default; `interpolant` = `local_derivative: interpolant`;",
        "`autograd` = the same model and weights, `mu` by `torch.autograd.grad(..., create_graph=True)` (the",
        "authors' approach). Samples = windows.",
        "Command: `python benchmarks/bench_onsager.py"
        + (f" --threads {args.threads}" if args.threads != 2 else "")
        + (f" --ref-batch-2d {args.ref_batch_2d}" if args.ref_batch_2d != 1 else "") + "`",
        "",
        "| grid | batch | impl | s/step median (best) | samples/s | peak RSS MiB (baseline) | speed-up vs autograd "
        "median (best) | authors' samples/s | ratio vs authors (target 10x) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        authors, _ = AUTHORS[r["case"]]
        ref = r["runs"]["autograd"]
        s_ref, s_ref_best = r["ref_batch"] / ref["median_s"], r["ref_batch"] / ref["times"][0]
        for name, res in r["runs"].items():
            b = r["ref_batch"] if name == "autograd" else r["batch"]
            sps, sps_best = b / res["median_s"], b / res["times"][0]
            speed = "1x" if name == "autograd" else f"{sps / s_ref:.1f}x ({sps_best / s_ref_best:.1f}x)"
            lines.append(f"| {r['grid']} | {b} | {name} | {res['median_s']:.3g} ({res['times'][0]:.3g}) | {sps:.3g} | "
                         f"{res['peak_rss_mib']:.0f} ({res['rss_before_mib']:.0f}) | {speed} | {authors:.3g} | "
                         f"{sps / authors:.2f}x |")
    lines.append("")
    for r in rows:
        for (a, b), ok in r["agree"].items():
            lines.append(f"- {r['grid']}: first-step loss {a} {r['runs'][a]['loss']:.6e}, {b} {r['runs'][b]['loss']:.6e};"
                         f" loss to 1e-4 and gradient norms to 1e-3 agree: {ok}.")
        if r["ref_batch"] != r["batch"]:
            lines.append(f"- {r['grid']}: autograd reference on batch {r['ref_batch']} (samples/s compared per "
                         "window); its loss is not compared.")
    lines += ["", "Authors' figures: " + "; ".join(f"{c}: {note}" for c, (_, note) in AUTHORS.items()) + "."]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _agree(a: dict, b: dict) -> bool:
    scale = max(b["grad_norms"])
    return abs(a["loss"] - b["loss"]) <= 1e-4 * abs(b["loss"]) and all(
        abs(x - y) <= 1e-3 * y + 1e-4 * scale for x, y in zip(a["grad_norms"], b["grad_norms"]))


if __name__ == "__main__":
    main()
