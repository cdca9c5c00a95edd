"""SpecOnsNet training speed: our closed-form derivatives against plain autograd, in one run.

What is timed is the forward and backward pass of :func:`mesodyn.training.rollout_loss` (windows of 11 frames,
K = 3 steps, explicit Euler, float32) on the CPU, for the paper's sizes: 1-D 256 points, batch 32; 2-D 128², batch
8. The optimizer update is left out (it is the same for both and tiny); ``bench_training.py`` times full
optimizer steps.

Two implementations of the *same* model with the same weights on the same batch:

* ``ours``: :class:`mesodyn.onsager.SpecOnsNet` as trained (``F'`` by a chunked closed-form autograd
  Function, ``V_nl``'s gradient by a hand-written adjoint);
* ``autograd``: the authors' approach, ``mu = dV/du`` by ``torch.autograd.grad(V, u, create_graph=True)``
  inside every step and the loss back-propagated through it (double backward).

Each (case, implementation) runs in its own subprocess, so that its peak resident memory (``ru_maxrss``) is
its own; the first step's loss and gradient norms of the two are compared (they must agree to float32
round-off). Samples are windows. Run::

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
    model = SpecOnsNet(shape=shape, length=(2 * math.pi,) * len(shape), dt=1e-3, stepper="euler")
    windows = smooth_windows(batch, shape)
    net = model if impl == "ours" else AutogradReference(model)
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
        ours = run_worker(case, "ours", args, batch)
        ref = run_worker(case, "autograd", args, ref_batch)
        if ref_batch == batch:  # same batch: loss and gradients must agree to float32 round-off
            # (atol relative to the largest norm: a parameter whose gradient nearly cancels, such as W's
            # at initialization, is compared at the round-off of the others)
            scale = max(ref["grad_norms"])
            agree = abs(ours["loss"] - ref["loss"]) <= 1e-4 * abs(ref["loss"]) and all(
                abs(a - b) <= 1e-3 * b + 1e-4 * scale for a, b in zip(ours["grad_norms"], ref["grad_norms"]))
        else:
            agree = None
        rows.append({"case": case, "grid": "x".join(map(str, shape)), "batch": batch, "ref_batch": ref_batch,
                     "ours": ours, "ref": ref, "agree": agree})

    lines = [
        "# SpecOnsNet training speed: closed-form derivatives vs plain autograd",
        "",
        "Forward + backward of the K-step rollout loss (windows of 11 frames, K = 3, explicit Euler, float32),",
        f"CPU, {args.threads} threads; {platform.machine()}, torch {torch.__version__}. Each implementation runs in its",
        "own process (median and best over repeats after one warm-up step; peak = `ru_maxrss` of that process, baseline",
        "= before the first step). `autograd` = the same model and weights, `mu` by `torch.autograd.grad(...,",
        "create_graph=True)` (the authors' approach). Samples = windows.",
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
        s_ours = r["batch"] / r["ours"]["median_s"]
        s_ref = r["ref_batch"] / r["ref"]["median_s"]
        best = (r["batch"] / r["ours"]["times"][0]) / (r["ref_batch"] / r["ref"]["times"][0])
        for name, res, sps, b in (("ours", r["ours"], s_ours, r["batch"]), ("autograd", r["ref"], s_ref, r["ref_batch"])):
            speed = f"{s_ours / s_ref:.1f}x ({best:.1f}x)" if name == "ours" else "1x"
            lines.append(f"| {r['grid']} | {b} | {name} | {res['median_s']:.3g} ({res['times'][0]:.3g}) | {sps:.3g} | "
                         f"{res['peak_rss_mib']:.0f} ({res['rss_before_mib']:.0f}) | {speed} | {authors:.3g} | "
                         f"{sps / authors:.2f}x |")
    lines.append("")
    for r in rows:
        if r["agree"] is None:
            lines.append(f"- {r['grid']}: autograd reference on batch {r['ref_batch']} (samples/s compared per "
                         "window); losses not compared.")
        else:
            lines.append(f"- {r['grid']}: first-step loss ours {r['ours']['loss']:.6e}, autograd "
                         f"{r['ref']['loss']:.6e}; gradient norms agree to 1e-3: {r['agree']}.")
    lines += ["", "Authors' figures: " + "; ".join(f"{c}: {note}" for c, (_, note) in AUTHORS.items()) + "."]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
