"""Continuum data-generation speed beside the authors' Dedalus timings (reference README §6).

Usage: ``python benchmarks/bench_continuum.py [--quick] [--full-2d]``. Writes
``benchmarks/results/continuum.md`` and ``.csv``.

* Per-trajectory seconds on one core (``workers=1``; wall and CPU time) for each data set and scheme, from a
  batch of trajectories, beside the authors' 0.9 s (KdV, AC-1D) and 20 s (AC-2D) per trajectory.
* The full 1000-trajectory 1-D paper sets on 2 cores (wall time; target < 2 min each).
* AC-2D on 2 cores: projected from a shorter run to 1000 trajectories (target < 20 min), or run in full
  with ``--full-2d``.

Absolute numbers depend on the machine and its load (this VM is shared): CPU time is reported beside wall
time, and the speed-up uses the wall time on an idle core as the authors did.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mesodyn.continuum import make_dataset

OUT = Path(__file__).resolve().parent / "results"
AUTHORS = {"kdv": 0.9, "allen_cahn": 0.9, "allen_cahn_2d": 20.0}  # s per trajectory, Dedalus, one core
ETDRK4 = {"kdv": {"dt": 2e-4, "save_every": 5}, "allen_cahn": {"dt": 2e-4, "save_every": 5},
          "allen_cahn_2d": {"dt": 5e-4, "save_every": 2}}


def timed(name: str, params: dict, workers: int) -> tuple[float, float, int]:
    t0, c0 = time.perf_counter(), time.process_time()
    ds = make_dataset(name, params=params, seed=0, progress=False, workers=workers)
    return time.perf_counter() - t0, time.process_time() - c0, int(ds.sizes["sample"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trajectories (a smoke run)")
    parser.add_argument("--full-2d", action="store_true", help="run all 1000 AC-2D trajectories on 2 cores")
    args = parser.parse_args()
    load_before = os.getloadavg()
    n_1d, n_2d = (64, 2) if args.quick else (512, 8)
    rows = []

    # One core, per trajectory.
    for name in ("kdv", "allen_cahn", "allen_cahn_2d"):
        n = n_2d if name == "allen_cahn_2d" else n_1d
        for scheme, extra in (("paper", {}), ("etdrk4", ETDRK4[name])):
            wall, cpu, got = timed(name, {"n_samples": n, "scheme": scheme, **extra}, workers=1)
            rows.append({"data set": name, "scheme": scheme + (f" (dt {extra['dt']:g})" if extra else " (dt 4e-05)"),
                         "cores": 1, "trajectories": got, "wall s": wall, "cpu s": cpu,
                         "s / trajectory": wall / got, "authors s / trajectory": AUTHORS[name],
                         "speed-up": AUTHORS[name] / (wall / got)})
            print(rows[-1], flush=True)

    # Two cores: full 1-D paper sets, 2-D projected (or full).
    for name in ("kdv", "allen_cahn", "allen_cahn_2d"):
        n = 1000
        if name == "allen_cahn_2d" and not args.full_2d:
            n = 4 * n_2d
        if args.quick:
            n = min(n, 128 if name != "allen_cahn_2d" else 4)
        wall, cpu, got = timed(name, {"n_samples": n}, workers=2)
        rows.append({"data set": name, "scheme": "paper (dt 4e-05)", "cores": 2, "trajectories": got,
                     "wall s": wall, "cpu s": cpu, "s / trajectory": wall / got,
                     "authors s / trajectory": AUTHORS[name], "speed-up": AUTHORS[name] / (wall / got),
                     "1000 trajectories, min": wall / got * 1000 / 60})
        print(rows[-1], flush=True)

    df = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / "continuum.csv", index=False, float_format="%.4g")
    load = f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    header = (f"Continuum data generation, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, numpy {np.__version__}; authors: Dedalus 3.0.4, one core "
              f"(reference README §6). Load average (1 min) during the run: {load} (a shared VM: other "
              f"jobs inflate both wall and CPU time).\n\n")
    table = df.to_markdown(index=False, floatfmt=".3g")
    (OUT / "continuum.md").write_text(header + table + "\n")
    print(header + table)


if __name__ == "__main__":
    main()
