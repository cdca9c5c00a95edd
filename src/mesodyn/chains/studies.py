"""Numerical studies of the chain data: time-step convergence and interpolation error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mesodyn.chains.initial import draw_sine_modes, sine_field
from mesodyn.chains.models import ChainModel
from mesodyn.chains.simulate import simulate_ensemble
from mesodyn.coarse import METHODS, interpolate_periodic, site_positions

__all__ = ["substep_convergence", "interpolation_error"]


def _rel_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Relative L2 difference per frame, worst sample: ``(time,)``."""
    return (np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)).max(axis=0)


def substep_convergence(model: ChainModel, *, factors=(1, 2, 4, 8), reference_factor: int = 32,
                        n_samples: int = 8, seed: int = 0, frames=(1, 10, 25, 50, 100)) -> pd.DataFrame:
    """Rel. L2 error of the site field ``u_n = r_n/ε²`` for substeps × factor against substeps × reference_factor.

    The same initial conditions (same seed) are used throughout; rows: factors; columns: frames (slow times).
    The last column is the observed order between consecutive factors at the final frame.
    """
    base = model.substeps_effective
    runs = {}
    for factor in (*factors, reference_factor):
        refined = dataclasses.replace(model, substeps=base * factor)
        ens = simulate_ensemble(refined, n_samples=n_samples, seed=seed, progress=False)
        runs[factor] = ens.strain / model.epsilon**2
    tau = model.epsilon**3 * simulate_ensemble(model, n_samples=1, seed=seed, progress=False).t_lab
    frames = [f for f in frames if f < runs[reference_factor].shape[1]]
    rows = []
    previous = None
    for factor in factors:
        err = _rel_l2(runs[factor], runs[reference_factor])
        row = {"substeps": base * factor, "dt_chain": model.dt_chain / factor}
        row.update({f"tau={tau[f]:.3g}": err[f] for f in frames})
        row["order (last frame)"] = np.log2(previous / err[frames[-1]]) if previous is not None else np.nan
        previous = err[frames[-1]]
        rows.append(row)
    return pd.DataFrame(rows)


def interpolation_error(n_sites: int, *, n_grid: int = 256, n_samples: int = 64, seed: int = 0,
                        n_modes: int = 3, max_k: int = 6) -> pd.DataFrame:
    """Rel. L2 error that each interpolation adds on the paper's smooth fields at arbitrary co-moving shifts."""
    draws = draw_sine_modes(np.random.default_rng(seed), n_samples, n_modes=n_modes, max_k=max_k)
    grid = np.arange(n_grid) * 2 * np.pi / n_grid
    exact = sine_field(draws, grid)
    shifts = np.random.default_rng(seed + 1).uniform(0, 1000, 8)
    rows = []
    for method in METHODS:
        errs = []
        for t in shifts:
            pos = site_positions(n_sites, np.array([t]))[0]
            got = interpolate_periodic(sine_field(draws, pos), pos, n_grid, method=method)
            errs.append(np.linalg.norm(got - exact, axis=-1) / np.linalg.norm(exact, axis=-1))
        errs = np.concatenate(errs)
        rows.append({"sites": n_sites, "method": method, "mean rel. L2": errs.mean(), "max rel. L2": errs.max()})
    return pd.DataFrame(rows)
