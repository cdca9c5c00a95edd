"""Chain-simulator speed: Numba kernel vs a NumPy reference on the same ensemble, thread scaling, paper-size runs.

Usage: ``python benchmarks/bench_chains.py [--quick]``. Writes ``benchmarks/results/chains.md`` and ``.csv``.
Ratios are measured within one run on the same machine (absolute numbers depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from mesodyn.chains import FENEChain, FPUTChain, draw_sine_modes, initial_state, simulate_ensemble
from mesodyn.chains.integrators import advance_displacement, advance_strain

OUT = Path(__file__).resolve().parent / "results"


def numpy_reference_steps(model, x, v, dt, n_steps):
    """One vectorised Verlet step of the whole ensemble at a time (the style of the paper's generator)."""
    x, v = x.copy(), v.copy()
    c2, alpha, beta = model.c**2, getattr(model, "alpha", 0.0), getattr(model, "beta", 0.0)

    def acc(y):
        if model.form == "strain":
            f = c2 * y + alpha * y**2 + beta * y**3
            return np.roll(f, -1, axis=1) - 2 * f + np.roll(f, 1, axis=1)
        r = np.roll(y, -1, axis=1) - y
        f = model.H * r / (1 - (r / model.R) ** 2)
        return f - np.roll(f, 1, axis=1)

    a = acc(x)
    for _ in range(n_steps):
        v += 0.5 * dt * a
        x += dt * v
        a = acc(x)
        v += 0.5 * dt * a
    return x, v


def numba_steps(model, x, v, dt, n_steps):
    x, v = np.ascontiguousarray(x.copy()), np.ascontiguousarray(v.copy())
    alive = np.ones(x.shape[0], dtype=np.bool_)
    peak = np.zeros(x.shape[0])
    if model.form == "strain":
        advance_strain(model.force_kind, model.force_params(), x, v, dt, 1, n_steps, np.inf, alive, peak)
    else:
        advance_displacement(model.force_kind, model.force_params(), x, v, dt, 1, n_steps, np.inf, model.R,
                             alive, peak)
    return x, v


def best_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the paper-size runs")
    args = parser.parse_args()
    max_threads = numba.config.NUMBA_NUM_THREADS
    rows = []
    for model in (FPUTChain(), FENEChain()):
        draws = draw_sine_modes(np.random.default_rng(0), 32)
        x0, v0 = initial_state(model, draws)
        dt = model.dt_chain
        n_np, n_nb = 400, 20000
        numba_steps(model, x0, v0, dt, 1)  # compile
        t_np, (x_np, _) = best_time(lambda: numpy_reference_steps(model, x0, v0, dt, n_np), repeat=3)
        x_nb_short, _ = numba_steps(model, x0, v0, dt, n_np)
        agree = np.abs(x_np - x_nb_short).max() / np.abs(x_np).max()
        rate_np = x0.size * n_np / t_np
        # the paper's generator: one trajectory at a time, vectorised over the sites
        t_one, _ = best_time(lambda: [numpy_reference_steps(model, x0[i:i + 1], v0[i:i + 1], dt, n_np)
                                      for i in range(4)], repeat=3)
        rate_one = 4 * model.n_sites * n_np / t_one
        rates = {}
        # thread scaling on a larger ensemble (128 trajectories), best of 7, threads interleaved
        big = draw_sine_modes(np.random.default_rng(1), 128)
        xb, vb = initial_state(model, big)
        n_big = 10000
        thread_counts = sorted({1, 2, max_threads} & set(range(1, max_threads + 1)))
        best = dict.fromkeys(thread_counts, np.inf)
        for _ in range(7):
            for threads in thread_counts:
                numba.set_num_threads(threads)
                best[threads] = min(best[threads], best_time(lambda: numba_steps(model, xb, vb, dt, n_big), 1)[0])
        rates = {threads: xb.size * n_big / best[threads] for threads in thread_counts}
        numba.set_num_threads(max_threads)
        rows.append({
            "chain": model.name, "sites": model.n_sites, "ensemble": f"{x0.shape[0]} (threads: {xb.shape[0]})",
            "numpy per trajectory (paper style) [p-steps/s]": f"{rate_one:.3g}",
            "numpy whole ensemble per step [p-steps/s]": f"{rate_np:.3g}",
            "numba 1 thread [p-steps/s]": f"{rates[1]:.3g}",
            "numba / numpy per trajectory": f"{rates[1] / rate_one:.0f}x",
            "numba / numpy ensemble": f"{rates[1] / rate_np:.0f}x",
            "speed-up 1->2 threads": f"{rates.get(2, float('nan')) / rates[1]:.2f}" if 2 in rates else "n/a",
            "max rel. diff numba vs numpy": f"{agree:.1e}",
        })
    table = pd.DataFrame(rows)
    full_rows = []
    if not args.quick:
        for model in (FPUTChain(), FENEChain()):
            simulate_ensemble(model, n_samples=2, seed=0, progress=False)
            t0 = time.perf_counter()
            simulate_ensemble(model, n_samples=1000, seed=0, progress=False)
            seconds = time.perf_counter() - t0
            steps = 1000 * model.n_sites * model.n_slow_steps * model.substeps_effective
            full_rows.append({"data set": f"{model.name} (paper size, 1000 trajectories)",
                              "threads": max_threads, "seconds": f"{seconds:.1f}",
                              "particle-steps/s": f"{steps / seconds:.3g}",
                              "authors' generator, 1 core (reference README section 6)":
                                  "about 52 min" if model.name == "fput" else "about 120 min"})
    OUT.mkdir(parents=True, exist_ok=True)
    header = (f"# Chain simulator benchmark\n\nMachine: {platform.processor() or platform.machine()}, "
              f"{max_threads} Numba threads available, numba {numba.__version__}, numpy {np.__version__}; "
              "float64; paper parameters (FPUT N=128, dt=0.169; FENE N=209, dt=0.198).\n\n")
    text = header + table.to_markdown(index=False) + "\n"
    if full_rows:
        text += "\n" + pd.DataFrame(full_rows).to_markdown(index=False) + "\n"
    (OUT / "chains.md").write_text(text)
    table.to_csv(OUT / "chains.csv", index=False)
    print(text)


if __name__ == "__main__":
    main()
