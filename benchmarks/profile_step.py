"""Where the time of one training step goes: fixed cost against arithmetic, per model, on one CPU thread.

One step is what :func:`mesodyn.training.fit` does per batch (K-step loss with K = 3 on 11-frame windows, backward,
Adam), at the paper's sizes (1-D: 256 points, batch 32; 2-D: 128², batch 8; float32). For every model:

* **Fixed cost and cost per window.** The step is timed at three batch sizes (1-D 1, 8, 32; 2-D 1, 4, 8), the
  batches interleaved round by round so that a busy spell of the shared machine hits all of them, the minimum of
  the repeats kept; a least-squares line ``t(batch) = fixed + batch * per_window`` through the three minima splits
  the step into what does not grow with the batch (Python, the autograd graph, the optimizer, launches of small
  kernels, SpecOnsNet's interpolant nodes) and what does.
* **Op time against wall time.** One profiled step (``torch.profiler``) at the full batch: the self time of all
  ATen operators against the step's wall time; the rest is Python, the autograd engine and dispatch.
* **The arithmetic a step needs**, counted while one step runs (a ``TorchDispatchMode``): FLOPs of the matrix
  products and convolutions (``torch.utils.flop_counter``'s formulas, plus the in-place and matrix-vector
  products they leave out), of the FFTs (``2.5 n log2 n`` per real transform of length ``n``, ``5 n log2 n``
  per complex one), and the values written by every other operator (pointwise work, bounded by memory traffic).
  The counting step runs SpecOnsNet's compiled MLP kernels (the table's nodes, ``V_nl``'s gradient) on their ATen
  paths, the same arithmetic in operators the counter sees (``bench_models.aten_paths``); the interpolant's compiled
  pass at the grid points is not counted (it reads and writes a few values per point; its ATen path would count
  the forty passes of that path instead).
  These are priced at rates measured in the same process on the same thread: a large matrix product
  (``gemm``), a batch of large FFTs and a large copy (bytes per second). Their sum, the **limit**, is what the
  step would cost if every operator ran at the machine's measured best rate with no overhead; ``wall / limit``
  is the distance to the hardware.

Run ``python benchmarks/profile_step.py`` (``--repeats 7``; ``--dims 1`` for 1-D only; ``--models`` to pick; FNO in
2-D costs minutes per step and runs only with ``--all``). Writes ``benchmarks/results/profile_step.{md,csv}``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

from bench_models import BATCH, DATASET, GRIDS, aten_paths, windows  # the cost table's sizes and data (same folder)
from mesodyn.models import build_model, config_for_data
from mesodyn.training import adam, rollout_loss

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = {1: (1, 8, 32), 2: (1, 4, 8)}
RUNS = [  # (label, model config, dims)
    ("speconsnet (interpolant)", {"name": "speconsnet", "local_derivative": "interpolant"}, (1, 2)),
    ("speconsnet_true_v", {"name": "speconsnet_true_v"}, (1, 2)),
    ("fno", {"name": "fno"}, (1, 2)),
    ("onsagernet", {"name": "onsagernet"}, (1,)),
    ("res_onsagernet", {"name": "res_onsagernet"}, (1, 2)),
]
SLOW = {("fno", 2)}  # about two minutes per step on one core (docs/budget.md)

aten = torch.ops.aten
_FFT = {aten._fft_r2c.default: 2.5, aten._fft_c2r.default: 2.5, aten._fft_c2c.default: 5.0}
_INPLACE_MM = {aten.addmm_.default: aten.addmm, aten.mm.out: aten.mm, aten.addmm.out: aten.addmm,
               aten.bmm.out: aten.bmm, aten.baddbmm_.default: aten.baddbmm}
_MV = {aten.mv.default, aten.mv.out, aten.addmv.default, aten.addmv_.default, aten.addmv.out}


class ArithmeticCounter(TorchDispatchMode):
    """Counts the matrix FLOPs, FFT FLOPs and the values written by all other operators while it is active."""

    def __init__(self):
        super().__init__()
        self.matrix_flops = 0
        self.fft_flops = 0.0
        self.values = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_counter.flop_registry:
            self.matrix_flops += flop_counter.flop_registry[packet](*args, **kwargs, out_val=out)
        elif func in _INPLACE_MM:
            plain = {k: v for k, v in kwargs.items() if k != "out"}
            self.matrix_flops += flop_counter.flop_registry[_INPLACE_MM[func]](*args, **plain, out_val=out)
        elif func in _MV:
            matrix = args[1] if packet is not aten.mv else args[0]
            self.matrix_flops += 2 * matrix.shape[0] * matrix.shape[1]
        elif func in _FFT:
            signal = args[0] if func is not aten._fft_c2r.default else out
            dims = args[1]
            n = math.prod(signal.shape[d] for d in dims) if func is not aten._fft_c2r.default else \
                math.prod(out.shape[d] for d in dims)
            count = signal.numel() // max(1, math.prod(signal.shape[d] for d in dims))
            self.fft_flops += _FFT[func] * count * n * math.log2(max(n, 2))
        elif isinstance(out, torch.Tensor) and out.is_floating_point() or (
                isinstance(out, torch.Tensor) and out.is_complex()):
            if not func.is_view:
                self.values += out.numel()
        return out


def machine_rates(repeats: int = 5) -> dict[str, float]:
    """The best rates of this thread: float32 gemm (FLOP/s), float32 real FFTs (FLOP/s), copy (bytes/s)."""
    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    gemm = 2 * 1024**3 / best(lambda: a @ b)
    x = torch.randn(4096, 1024)
    fft = 4096 * 2.5 * 1024 * 10 / best(lambda: torch.fft.rfft(x))
    big, dst = torch.randn(2**24), torch.empty(2**24)
    copy = 2 * 4 * 2**24 / best(lambda: dst.copy_(big))  # read + write
    return {"gemm_flops": gemm, "fft_flops": fft, "copy_bytes": copy}


def make_step(config: dict, ndim: int, batch: int):
    torch.manual_seed(0)
    model = build_model(config).float()
    optimizer = adam(model.parameters(), 1e-4)
    data = windows(ndim, batch)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = rollout_loss(model, data, rollout_steps=3)
        loss.backward()
        optimizer.step()

    return step


def profile_model(label: str, options: dict, ndim: int, repeats: int, rates: dict[str, float]) -> dict:
    config = config_for_data(options, grid=GRIDS[ndim], dataset=DATASET[ndim], attrs={"epsilon": 0.1})
    batches = BATCHES[ndim]
    steps = {b: make_step(config, ndim, b) for b in batches}
    for step in steps.values():  # warm-up: allocator, FFT plans, lazy initialisation
        step()
        step()
    times = defaultdict(list)
    for _ in range(repeats):
        for b, step in steps.items():  # interleaved
            start = time.perf_counter()
            step()
            times[b].append(time.perf_counter() - start)
    best = {b: min(v) for b, v in times.items()}
    per_window, fixed = np.polyfit(np.array(batches, float), np.array([best[b] for b in batches]), 1)

    full = steps[batches[-1]]
    counter = ArithmeticCounter()
    with aten_paths(interpolant_=False), counter:  # the MLPs' arithmetic as ATen operators, which it sees
        full()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        full()
        profiled_wall = time.perf_counter() - start
    op_time = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key.startswith("aten::")) * 1e-6
    n_ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    limit = (counter.matrix_flops / rates["gemm_flops"] + counter.fft_flops / rates["fft_flops"]
             + counter.values * 8 / rates["copy_bytes"])  # a value written is at least one read and one write
    wall = best[batches[-1]]
    return {
        "model": label, "grid": "x".join(map(str, GRIDS[ndim]["shape"])), "batch": batches[-1],
        "ms_per_step": " / ".join(f"{best[b] * 1e3:.2f}" for b in batches),
        "fixed_ms": round(float(fixed) * 1e3, 2), "per_window_ms": round(float(per_window) * 1e3, 3),
        "fixed_share": round(float(fixed) / wall, 2),
        "aten_ops": n_ops, "op_time_share": round(op_time / profiled_wall, 2),
        "matrix_mflop": round(counter.matrix_flops / 1e6, 1), "fft_mflop": round(counter.fft_flops / 1e6, 1),
        "pointwise_mvalues": round(counter.values / 1e6, 2),
        "limit_ms": round(limit * 1e3, 3), "wall_over_limit": round(wall / limit, 1),
        "batch_sizes": "/".join(map(str, batches)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dims", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--models", nargs="+", default=[label.split(" ")[0] for label, _, _ in RUNS])
    parser.add_argument("--all", action="store_true", help="also FNO in 2-D (minutes per step)")
    parser.add_argument("--out", default="profile_step")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    rates = machine_rates()
    print({k: f"{v:.3g}" for k, v in rates.items()}, flush=True)
    rows = []
    for label, options, dims in RUNS:
        if options["name"] not in args.models:
            continue
        for ndim in (d for d in args.dims if d in dims):
            if (options["name"], ndim) in SLOW and not args.all:
                continue
            rows.append(profile_model(label, options, ndim, args.repeats, rates))
            print(rows[-1], flush=True)

    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{args.out}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# One training step: fixed cost, arithmetic and the distance to the hardware (1 CPU thread)",
        "",
        f"`python benchmarks/profile_step.py --repeats {args.repeats}`; torch {torch.__version__}, "
        f"{platform.machine()}, 1 thread, float32, K = 3, windows of 11 frames; minimum of {args.repeats} "
        "interleaved repeats per batch size after two warm-up steps. The machine's 2 cores were shared "
        f"(load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end): compare rows "
        "within this table, not across runs.",
        f"Measured rates of this thread: gemm {rates['gemm_flops'] / 1e9:.1f} GFLOP/s, real FFT "
        f"{rates['fft_flops'] / 1e9:.1f} GFLOP/s, copy {rates['copy_bytes'] / 1e9:.1f} GB/s.",
        "",
        "*fixed* and *per window*: the line through the step's time at the three batch sizes. *ops*: ATen operator "
        "calls in one step at the full batch (nested calls included, as the profiler records them); *op share*: their self time over the profiled step's wall time. "
        "*limit*: the step's matrix FLOPs, FFT FLOPs and pointwise values priced at the measured rates. A negative "
        "fixed cost means none is measurable (the time grows a little faster than the batch). The fixed cost "
        "includes Adam's update, arithmetic that scales with the parameters, not the batch (Res-OnsagerNet 2-D: "
        "17.6 M parameters).",
        "",
        "| model | grid | batches | ms per step | fixed ms | ms per window | fixed share | ops | op share | "
        "matrix MFLOP | FFT MFLOP | pointwise M values | limit ms | wall / limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['grid']} | {r['batch_sizes']} | {r['ms_per_step']} | {r['fixed_ms']} | "
                     f"{r['per_window_ms']} | {r['fixed_share']} | {r['aten_ops']} | {r['op_time_share']} | "
                     f"{r['matrix_mflop']} | {r['fft_mflop']} | {r['pointwise_mvalues']} | {r['limit_ms']} | "
                     f"{r['wall_over_limit']}x |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
