"""What lowers the fixed cost of a 1-D SpecOnsNet training step, and whether it keeps the losses.

The step is the training loop's (:func:`mesodyn.training.fit`): K-step loss (K = 3, windows of 11 frames, 256 points,
SpecOnsNet with the interpolant F'), the non-finite guard on the loss and the gradients, Adam. Each variant trains its
own copy of the same model (seed 0) for ``--steps`` steps on the same windows, the variants interleaved step by step
so that the shared machine's load hits them alike; reported are the minimum and median of the step times and how far
the variant's losses are from the reference variant's (``bitwise`` or the largest relative difference). Variants:

* ``reference``: the loop before this benchmark (one finiteness check per parameter gradient, an ``F'`` table per
  call of the interpolant);
* ``one check``: one stacked finiteness check of all gradients;
* ``one table``: and one ``F'`` table for the step's whole K-step rollout (``SpecOnsNet.shared_tables``, what the
  loop does now);
* ``Adam foreach`` / ``Adam fused``: PyTorch's multi-tensor and fused Adam on the CPU, with one check and one table;
* ``compiled loss``: ``torch.compile`` of the K-step loss (inductor, a C compiler is installed), with the seconds the
  first compiled step took (only with ``--compile``: about a minute of compiling, and it recompiles for every new
  range of the fields, which the interpolant reads as Python numbers).

With ``--variants kernels`` (the default) the variants are the CPU kernels of the loop as it is now (one check, one
table per step):

* ``ATen kernels`` (the reference): a table's nodes and check points through ATen operators
  (``energy._LocalDerivative`` with the weights cast to float64) and ``V_nl``'s gradient through ATen operators;
* ``compiled nodes``: the nodes and check points through the compiled float64 kernels (``onsager._nodes64``);
* ``compiled nodes + V_nl``: and ``V_nl``'s gradient through its compiled kernels (``onsager._nonlocal_kernels``),
  what the loop does now;
* ``+ Adam fused``: and PyTorch's fused Adam.

Run ``python benchmarks/step_options.py [--batch 32] [--steps 50] [--variants kernels|loop] [--compile]``; writes
``benchmarks/results/step_kernels_b{batch}.md`` (``kernels``) or ``step_options_b{batch}.md`` (``loop``, the
variants above).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time

import torch

from bench_models import GRIDS, aten_paths, windows, write_report  # the cost table's sizes and data (same folder)
from mesodyn.models import build_model, config_for_data
from mesodyn.training import rollout_loss
from mesodyn.training.loop import _all_finite



def _each_finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)


def _per_call_tables(model, batch_windows, *, rollout_steps):
    """The K-step loss with an ``F'`` table fitted at every call (before ``SpecOnsNet.shared_tables``)."""
    model.shared_tables = lambda fields: contextlib.nullcontext()  # an instance attribute hides the method
    return rollout_loss(model, batch_windows, rollout_steps=rollout_steps)


def _kernels(*, nodes: bool, nonlocal_: bool):
    """The K-step loss with the compiled node kernels and/or ``V_nl`` kernels switched off for its duration."""
    def loss_fn(model, batch_windows, *, rollout_steps):
        with aten_paths(nodes=not nodes, nonlocal_=not nonlocal_, interpolant_=False):
            return rollout_loss(model, batch_windows, rollout_steps=rollout_steps)
    return loss_fn


def make_step(*, batch: int, adam: dict, finite, loss_fn, pool: torch.Tensor):
    config = config_for_data({"name": "speconsnet", "local_derivative": "interpolant"}, grid=GRIDS[1],
                             dataset="kdv", attrs={})
    torch.manual_seed(0)
    model = build_model(config).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, **adam)
    params = list(model.parameters())
    draws = torch.Generator().manual_seed(0)

    def step() -> float:
        batch_windows = pool[torch.randint(0, pool.shape[0], (batch,), generator=draws)]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch_windows, rollout_steps=3)
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")
        loss.backward()
        if not finite(p.grad for p in params):
            raise FloatingPointError("non-finite gradient")
        optimizer.step()
        return float(loss.detach())

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--variants", choices=("kernels", "loop"), default="kernels")
    parser.add_argument("--compile", action="store_true", help="also torch.compile of the loss (about a minute)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    pool = windows(1, 64)
    if args.variants == "loop":
        variants = {
            "reference": dict(adam={}, finite=_each_finite, loss_fn=_per_call_tables),
            "one check": dict(adam={}, finite=_all_finite, loss_fn=_per_call_tables),
            "one table": dict(adam={}, finite=_all_finite, loss_fn=rollout_loss),
            "Adam foreach": dict(adam={"foreach": True}, finite=_all_finite, loss_fn=rollout_loss),
            "Adam fused": dict(adam={"fused": True}, finite=_all_finite, loss_fn=rollout_loss),
        }
    else:
        variants = {
            "ATen kernels": dict(adam={}, finite=_all_finite, loss_fn=_kernels(nodes=False, nonlocal_=False)),
            "compiled nodes": dict(adam={}, finite=_all_finite, loss_fn=_kernels(nodes=True, nonlocal_=False)),
            "compiled nodes + V_nl": dict(adam={}, finite=_all_finite, loss_fn=rollout_loss),
            "+ Adam fused": dict(adam={"fused": True}, finite=_all_finite, loss_fn=rollout_loss),
        }
    if args.compile:
        variants["compiled loss"] = dict(adam={}, finite=_all_finite, loss_fn=torch.compile(rollout_loss))
    steps = {name: make_step(batch=args.batch, pool=pool, **v) for name, v in variants.items()}
    losses = {name: [] for name in steps}
    times = {name: [] for name in steps}
    first = {}
    for i in range(args.steps):
        for name, step in steps.items():
            start = time.perf_counter()
            losses[name].append(step())
            elapsed = time.perf_counter() - start
            if i == 0:
                first[name] = elapsed  # warm-up (and compilation): not a step time
            else:
                times[name].append(elapsed)
    reference_name = next(iter(steps))
    reference = losses[reference_name]
    lines = [
        f"# Options for the fixed cost of a 1-D SpecOnsNet step (batch {args.batch}, 1 thread)",
        "",
        f"`python benchmarks/step_options.py --batch {args.batch} --steps {args.steps} --variants {args.variants}"
        f"{' --compile' if args.compile else ''}`; torch {torch.__version__}, float32, K = 3, 256 points, "
        f"interpolant F'. Step times over steps 2..{args.steps}, variants interleaved step by step on a shared "
        f"2-core machine (load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end).",
        "",
        f"| variant | ms per step (min) | ms (median) | first step s | losses over the steps vs {reference_name} |",
        "|---|---|---|---|---|",
    ]
    for name in steps:
        if losses[name] == reference:
            agreement = "bitwise"
        else:
            worst = max(abs(a - b) / abs(b) for a, b in zip(losses[name], reference))
            agreement = f"max relative difference {worst:.1e}"
        lines.append(f"| {name} | {min(times[name]) * 1e3:.2f} | {statistics.median(times[name]) * 1e3:.2f} | "
                     f"{first[name]:.2f} | {agreement} |")
    write_report(f"step_{'kernels' if args.variants == 'kernels' else 'options'}_b{args.batch}", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
