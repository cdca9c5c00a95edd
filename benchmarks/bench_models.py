"""Cost of one optimizer step of every trainable registered model, at the paper's sizes, on this machine.

One step is what :func:`mesodyn.training.fit` does per batch: the K-step loss (K = 3) on a batch of 11-frame windows
(1-D: 256 points, batch 32; 2-D: 128², batch 8), backward and an Adam update, float32. Each model is timed in this
process after two warm-up steps, best and median of ``--repeats`` steps. The workflow uses these numbers to split a
fixed CPU budget between models.

Run ``python benchmarks/bench_models.py --threads 1`` (writes ``benchmarks/results/models_<threads>thread.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from pathlib import Path

import torch

import mesodyn.onsager.energy as energy
from mesodyn.models import build_model, config_for_data
from mesodyn.onsager import interpolant
from mesodyn.registry import DATASETS, MODELS
from mesodyn.training import adam, rollout_loss

RESULTS = Path(__file__).resolve().parent / "results"
GRIDS = {1: {"shape": [256], "length": [2 * math.pi], "dt": 1e-3},
         2: {"shape": [128, 128], "length": [2 * math.pi, 2 * math.pi], "dt": 1e-3}}
BATCH = {1: 32, 2: 8}
DATASET = {1: "kdv", 2: "allen_cahn_2d"}
OPTIONS = {"speconsnet": [{}, {"local_derivative": "interpolant"}]}
# SpecOnsNet's exact path in 2-D takes ~10 s a step (benchmarks/bench_onsager.py has it); skipped unless --all
SLOW = {("speconsnet", 2, ())}


def write_report(name: str, lines: list[str]) -> None:
    """Write ``lines`` to ``benchmarks/results/<name>.md`` and print them (the benchmarks' Markdown tables)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


@contextlib.contextmanager
def aten_paths(*, nodes: bool = True, nonlocal_: bool = True, interpolant_: bool = True):
    """Within the block, the named parts of a SpecOnsNet step take their ATen path instead of the compiled CPU
    kernels: the table's nodes (``onsager._nodes64``), ``V_nl``'s gradient (``onsager._nonlocal_kernels``), the
    interpolant's evaluation at the grid points. The same arithmetic, as ATen operators (which a
    ``TorchDispatchMode`` sees and counts). Each choice is made in a forward pass, so the backward follows it."""
    saved = energy.on_nodes, energy._compiled_nonlocal, interpolant._compiled
    try:
        if nodes:
            energy.on_nodes = lambda weights, tangent: None
        if nonlocal_:
            energy._compiled_nonlocal = lambda c, weights: False
        if interpolant_:
            interpolant._compiled = lambda u, table: False
        yield
    finally:
        energy.on_nodes, energy._compiled_nonlocal, interpolant._compiled = saved


def windows(ndim: int, batch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    shape = GRIDS[ndim]["shape"]
    axes = [torch.arange(n) * 2 * math.pi / n for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    base = torch.stack([torch.sin(sum(mesh) + 6.3 * torch.rand(1, generator=gen)) for _ in range(batch)])
    return torch.stack([base * math.exp(-0.01 * j) for j in range(11)], dim=1).float()


def time_model(name: str, ndim: int, options: dict, repeats: int) -> dict:
    dataset = DATASET[ndim]
    config = config_for_data({"name": name, **options}, grid=GRIDS[ndim], dataset=dataset,
                             attrs={"epsilon": 0.1})
    torch.manual_seed(0)
    model = build_model(config).float()
    optimizer = adam(model.parameters(), 1e-4)
    batch = windows(ndim, BATCH[ndim])
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = rollout_loss(model, batch, rollout_steps=3)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    label = name + "".join(f" {k}={v}" for k, v in options.items())
    return {"model": label, "grid": "x".join(map(str, GRIDS[ndim]["shape"])), "batch": BATCH[ndim],
            "parameters": sum(p.numel() for p in model.parameters()), "best_s": min(times),
            "median_s": statistics.median(times)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dims", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--all", action="store_true", help="also the slow SpecOnsNet exact path in 2-D")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name, info in MODELS.items():
        if not info.trainable:
            continue
        for ndim in args.dims:
            if ndim not in info.dims or not info.applies_to(DATASET[ndim]):
                continue
            for options in OPTIONS.get(name, [{}]):
                if (name, ndim, tuple(options.items())) in SLOW and not args.all:
                    continue
                row = time_model(name, ndim, options, args.repeats)
                print(row, flush=True)
                rows.append(row)
    lines = [f"Seconds per optimizer step (K = 3, float32, {args.threads} thread(s), best and median of "
             f"{args.repeats}); `benchmarks/bench_models.py`.", "",
             "| model | grid | batch | parameters | best s/step | median s/step |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['grid']} | {r['batch']} | {r['parameters']:,} | {r['best_s']:.4f} | "
              f"{r['median_s']:.4f} |" for r in rows]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"models_{args.threads}thread.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
