"""A data set made outside mesodyn: the 1-D Cahn–Hilliard equation, written to mesodyn's user data contract.

    u_t = d²/dx² (u³ - u - kappa u_xx)   on the periodic interval [0, 2 pi)

solved by a semi-implicit pseudo-spectral step (the stiff fourth-order term implicit, the rest explicit) from small
random initial fields, which separate into +1 and -1 phases and coarsen. The equation is a gradient flow in Onsager
form with the conserved mobility M = -d²/dx² (symbol k²) and the free energy
V(u) = ∫ (u² - 1)²/4 + kappa/2 u_x² dx: what a learned Onsager model should find.

This script uses numpy and xarray only (it never imports mesodyn): any simulator that writes ``u`` with dims
(sample, time, x) on a uniform periodic grid and a uniform time axis would do (docs/your-data.md).

    python examples/make_cahn_hilliard.py data/cahn_hilliard.nc
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr


def simulate(*, n_samples: int, n_grid: int, kappa: float, dt: float, save_every: int, n_frames: int,
             seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trajectories ``u`` (sample, time, x), the saved times and the grid."""
    rng = np.random.default_rng(seed)
    x = 2 * np.pi * np.arange(n_grid) / n_grid
    k = np.fft.rfftfreq(n_grid, d=1.0 / n_grid)  # integer wavenumbers of the 2 pi-periodic interval
    k2 = k**2
    implicit = 1.0 + dt * kappa * k2**2
    # small random fields of a few modes around a mean of zero: spinodal decomposition follows
    u = np.zeros((n_samples, n_grid))
    for m in range(1, 6):
        amplitude = rng.normal(0.0, 0.3 / m, size=(n_samples, 1))
        phase = rng.uniform(0.0, 2 * np.pi, size=(n_samples, 1))
        u += amplitude * np.cos(m * x + phase)
    out = np.empty((n_samples, n_frames, n_grid))
    out[:, 0] = u
    u_hat = np.fft.rfft(u, axis=-1)
    for frame in range(1, n_frames):
        for _ in range(save_every):
            u = np.fft.irfft(u_hat, n=n_grid, axis=-1)
            nonlinear = np.fft.rfft(u**3 - u, axis=-1)
            u_hat = (u_hat - dt * k2 * nonlinear) / implicit
        out[:, frame] = np.fft.irfft(u_hat, n=n_grid, axis=-1)
    times = dt * save_every * np.arange(n_frames)
    return out, times, x


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the netCDF file to write")
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--n-grid", type=int, default=64)
    parser.add_argument("--kappa", type=float, default=0.1)
    parser.add_argument("--dt", type=float, default=1e-3)
    parser.add_argument("--save-every", type=int, default=25)
    parser.add_argument("--frames", type=int, default=41)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    u, times, x = simulate(n_samples=args.n_samples, n_grid=args.n_grid, kappa=args.kappa, dt=args.dt,
                           save_every=args.save_every, n_frames=args.frames, seed=args.seed)
    ds = xr.Dataset(
        {"u": (("sample", "time", "x"), u, {"long_name": "order parameter", "units": "1"})},
        coords={"time": ("time", times, {"long_name": "time", "units": "1"}),
                "x": ("x", x, {"long_name": "position", "units": "1"})},
        attrs={"title": "1-D Cahn-Hilliard, semi-implicit pseudo-spectral", "kappa": args.kappa,
               "dt": args.dt, "save_every": args.save_every, "seed": args.seed},
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # data/ does not exist in a fresh clone
    ds.to_netcdf(args.out)
    print(f"wrote {args.out}: u {dict(ds['u'].sizes)}")


if __name__ == "__main__":
    main()
