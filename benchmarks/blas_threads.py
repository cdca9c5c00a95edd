"""The compiled kernels' BLAS threads: one (what ``onsager._blas`` sets) against OpenBLAS's default, quiet and busy.

The node kernels (``onsager._nodes64``) and ``V_nl``'s kernels (``onsager._nonlocal_kernels``) multiply a few hundred
rows by 64 x 64 weights with ``np.dot``, that is SciPy's OpenBLAS, whose default is one thread per core whatever
``torch.set_num_threads`` says. This benchmark trains the 1-D SpecOnsNet with the interpolant ``F'`` (batch 1 and
32, torch on one thread, the synthetic windows of ``bench_models.py``) and interleaves, step by step, the kernels with
OpenBLAS on one thread and with OpenBLAS's own thread count (``_blas`` switched off), first on an otherwise quiet
machine and then with a busy process on every other core (a NumPy loop; what the other jobs of a workflow are).

Run ``python benchmarks/blas_threads.py [--steps 60]``; writes ``benchmarks/results/blas_threads.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np
import torch

import mesodyn.onsager._blas as blas
import profile_step  # (same folder): its training step
from bench_models import GRIDS, write_report  # (same folder)
from mesodyn.models import config_for_data


def _burn(stop) -> None:  # pragma: no cover (a child process)
    x = np.random.default_rng(0).standard_normal(1 << 16)
    while not stop.is_set():
        for _ in range(100):
            x = np.sin(x)


def make_step(batch: int):
    config = config_for_data({"name": "speconsnet", "local_derivative": "interpolant"}, grid=GRIDS[1],
                             dataset="allen_cahn", attrs={"epsilon": 0.1})
    return profile_step.make_step(config, 1, batch)


def measure(steps: int) -> dict:
    control = blas._CONTROL
    out = {}
    for batch in (1, 32):
        step = make_step(batch)
        for _ in range(5):
            step()
        times = {"one thread": [], "OpenBLAS default": []}
        for _ in range(steps):
            for name in times:
                blas._CONTROL = control if name == "one thread" else None
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        blas._CONTROL = control
        out[batch] = times
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if blas._CONTROL is None:
        print("SciPy here has no bundled OpenBLAS: nothing to compare")
        return 1
    cores = os.cpu_count() or 1
    rows = []
    for load in ("quiet", "busy"):
        stop = mp.Event()
        burners = [mp.Process(target=_burn, args=(stop,)) for _ in range(max(1, cores - 1))] if load == "busy" else []
        for p in burners:
            p.start()
        try:
            results = measure(args.steps)
        finally:
            stop.set()
            for p in burners:
                p.join()
        for batch, times in results.items():
            for name, t in times.items():
                rows.append(f"| {load} | {batch} | {name} | {min(t) * 1e3:.2f} | {statistics.median(t) * 1e3:.2f} |")
    default_threads = blas.blas_threads()
    lines = [
        "# The compiled kernels' BLAS threads: one against OpenBLAS's default",
        "",
        f"`python benchmarks/blas_threads.py --steps {args.steps}`; torch {torch.__version__}, one torch thread, "
        f"{cores} cores, OpenBLAS default {default_threads} threads; 1-D SpecOnsNet (interpolant), K = 3, synthetic "
        "windows; the two variants interleaved step by step, minimum and median of the step times. *busy*: a NumPy "
        f"loop on {max(1, cores - 1)} other core(s).",
        "",
        "| machine | batch | kernels' BLAS | min ms | median ms |",
        "|---|---|---|---|---|",
        *rows,
    ]
    write_report("blas_threads", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
