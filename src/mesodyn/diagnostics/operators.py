"""The learned operators: gauge-invariant symbols against the truth, and the dissipation along rollouts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.diagnostics._common import (SYSTEMS, _attrs, _frames, _prepare, _require, _sample_coord, _samples,
                                         _stepper_name, _times)
from mesodyn.diagnostics.energy import total_energy
from mesodyn.fields import grid_from_data
from mesodyn.models import capabilities
from mesodyn.onsager.gauge import gauge_invariant_symbols, symbol_fit
from mesodyn.rollout import guarded_step, rollout

__all__ = ["spectral_extent", "operator_symbols", "dissipation_along_rollout"]

# -- ours: gauge-invariant operator symbols -------------------------------------------------------------------------
def spectral_extent(data: xr.Dataset, *, samples: Sequence[int], fraction: float = 0.999) -> float:
    """The smallest wavenumber magnitude ``K`` such that the modes with ``|k| <= K`` hold ``fraction`` of the
    spectral energy ``sum |u_hat(k)|^2`` of every frame of the given trajectories (2-D: ``|k|`` of the vector).

    The learned symbols are constrained only where the data have energy; this is where to compare them with the
    truth (:func:`operator_symbols`' ``k_max_fit``).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}.")
    idx = _samples(data, samples)
    grid = grid_from_data(data)
    shape, length = [int(n) for n in grid["shape"]], [float(L) for L in grid["length"]]
    axes = [np.fft.fftfreq(n, d=1.0 / n) * 2 * np.pi / L for n, L in zip(shape, length)]
    kmag = np.sqrt(sum(k**2 for k in np.meshgrid(*axes, indexing="ij")))
    power = np.zeros(kmag.shape)
    for i in idx:  # one trajectory at a time (a 2-D test set at once would be a gigabyte)
        frames = _frames(data, np.asarray([i]))[0]
        power += (np.abs(np.fft.fftn(frames, axes=tuple(range(1, frames.ndim)))) ** 2).sum(axis=0)
    order = np.argsort(kmag, axis=None)
    k_sorted, cum = kmag.ravel()[order], np.cumsum(power.ravel()[order])
    if cum[-1] <= 0:
        return 0.0
    return float(k_sorted[np.searchsorted(cum, fraction * cum[-1])])


def _symbols(model: Any) -> dict[str, Any]:
    """:func:`mesodyn.onsager.gauge.gauge_invariant_symbols` of a model that declares its energy's parts, or for
    one without a quadratic energy (Res-OnsagerNet) the raw symbols, read as in the ``b = 1`` gauge."""
    if capabilities(model).energy_parts:
        out = gauge_invariant_symbols(model)
    else:
        with torch.no_grad():
            m, phi = model.operators.symbols(full=True)
        out = {"k": model.grid.full_wavenumbers(), "b_m": m.double().cpu().numpy(),
               "b_phi": phi.double().cpu().numpy(), "a_over_b": 0.0, "b": 1.0}
    return out


def operator_symbols(model: Any, *, system: str | None = None, k_max_fit: float | None = None) -> xr.Dataset:
    """The symbols of ``M`` and ``W`` times ``b`` (invariant under the gauge ``(M, W, V) -> (M/c, W/c, c V)``).

    With ``system`` the true symbols in the ``b = 1`` gauge are added and fitted: Allen–Cahn ``b m = 1``,
    ``b phi = 0``; KdV ``b m = 0``, ``b phi = -k`` (zero on the Nyquist mode, which the class cannot hold).

    Parameters
    ----------
    model
        A model with Fourier operators (``model.operators``, ``model.grid``): SpecOnsNet, the true-``V`` ablation.
    system : {"allen_cahn", "kdv"}, optional
        Known truth.
    k_max_fit
        Fit only modes with ``|k| <= k_max_fit`` (the resolved ones); default all.

    Returns
    -------
    xarray.Dataset
        1-D: dim ``k``; 2-D: dims ``ky``, ``kx``; wavenumbers increasing (``fftshift`` order). ``b_m``,
        ``b_phi``, ``m``, ``phi``; scalars ``a_over_b`` and ``b``; with ``system``: ``true_b_m``, ``true_b_phi``
        and the fits through the origin ``{b_m, b_phi}_fit_coefficient`` and ``..._fit_residual``
        (:func:`mesodyn.onsager.gauge.symbol_fit`, where the true symbol is not zero).
    """
    _require(model, "operators", "the operator symbols")
    if system is not None and system not in SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(SYSTEMS)} or None, got {system!r}.")
    sym = _symbols(model)
    b = float(sym["b"])
    k = sym["k"]
    ndim = k.shape[0]
    axes = tuple(range(ndim))
    shift = lambda a: np.fft.fftshift(a, axes=axes)  # noqa: E731
    dims = ("k",) if ndim == 1 else ("ky", "kx")
    axis_k = [np.fft.fftshift(np.take(k[d], 0, axis=1 - d) if ndim == 2 else k[0]) for d in range(ndim)]
    data_vars: dict[str, Any] = {
        "b_m": (dims, shift(sym["b_m"]), {"long_name": "b times the symbol m(k) of M (gauge invariant)",
                                          "units": "1"}),
        "b_phi": (dims, shift(sym["b_phi"]), {"long_name": "b times the symbol phi(k) of W = i phi (gauge invariant)",
                                              "units": "1"}),
        "m": (dims, shift(sym["b_m"] / b), {"long_name": "symbol m(k) of M (gauge dependent)", "units": "1"}),
        "phi": (dims, shift(sym["b_phi"] / b), {"long_name": "symbol phi(k) of W (gauge dependent)", "units": "1"}),
        "a_over_b": ((), float(sym["a_over_b"]), {"long_name": "a / b of the quadratic energy", "units": "1"}),
        "b": ((), b, {"long_name": "coefficient b of int b/2 |grad u|^2", "units": "1"}),
    }
    if system is not None:
        if system == "kdv" and ndim != 1:
            raise ValueError("the KdV symbols are known on 1-D grids only.")
        shape = k.shape[1:]
        if system == "allen_cahn":
            true_m, true_phi = np.ones(shape), np.zeros(shape)
        else:
            n = shape[0]
            true_m, true_phi = np.zeros(shape), -k[0].copy()
            if n % 2 == 0:
                true_phi[n // 2] = 0.0  # self-conjugate: W's symbol is zero there by construction
        data_vars["true_b_m"] = (dims, shift(true_m), {"long_name": "true b m(k)", "units": "1"})
        data_vars["true_b_phi"] = (dims, shift(true_phi), {"long_name": "true b phi(k)", "units": "1"})
        kmag = np.sqrt((k**2).sum(axis=0))
        sel = kmag <= (np.inf if k_max_fit is None else float(k_max_fit))
        for name, learned, truth in (("b_m", sym["b_m"], true_m), ("b_phi", sym["b_phi"], true_phi)):
            if np.any(truth[sel] != 0):
                fit = symbol_fit(learned[sel], truth[sel])
                data_vars[f"{name}_fit_coefficient"] = ((), fit["coefficient"], {
                    "long_name": f"c of {name} ~ c * true {name} (1: the truth)", "units": "1"})
                data_vars[f"{name}_fit_residual"] = ((), fit["relative_residual"], {
                    "long_name": f"relative residual of that fit of {name}", "units": "1"})
    coords = {d: (d, axis_k[i], {"long_name": f"wavenumber {d}", "units": "1 / length unit of the data"})
              for i, d in enumerate(dims)}
    ds = xr.Dataset(data_vars, coords=coords)
    settings = {"system": system or "none", "k_max_fit": "none" if k_max_fit is None else float(k_max_fit)}
    ds.attrs = _attrs(model, None, "operator_symbols", "gauge-invariant symbols of the learned operators",
                      settings, None)
    return ds


# -- ours: dissipation along rollouts ----------------------------------------------------------------------------------
def _energy_and_dissipation(model: Any, u: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``V(u)`` and ``<mu, M mu> = -dissipation_rate(u)`` per batch member (float64)."""
    energy = total_energy(model, u).double().cpu().numpy()
    with torch.no_grad():
        dissipation = (-model.dissipation_rate(u)).double().cpu().numpy()
    return energy, dissipation


def _record_states(model: Any, u0: torch.Tensor, n: int,
                   step: Callable[[torch.Tensor], torch.Tensor] | None,
                   truth: Callable[[int], torch.Tensor] | None) -> tuple[np.ndarray, np.ndarray]:
    """``V`` and ``<mu, M mu>`` (sample, step) at ``u0`` and the ``n`` states after it: the data's frames
    (``truth(s)``), or a rollout of ``step`` on the one engine (:func:`mesodyn.rollout.rollout`).

    The rollout records every step and declares no member diverged: a rollout that blows up shows as non-finite
    values here, where the other diagnostics stop it, because what the dissipation does on the way is the point.
    """
    energy = np.full((u0.shape[0], n + 1), np.nan)
    dissipation = np.full((u0.shape[0], n + 1), np.nan)

    def record(s: int, u: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
        energy[:, s], dissipation[:, s] = _energy_and_dissipation(model, u)
        return torch.zeros(u.shape[0], dtype=torch.bool)

    record(0, u0)
    if truth is not None:
        for s in range(1, n + 1):
            record(s, truth(s))
    else:
        rollout(step, u0, n_steps=n, on_step=record)
    return energy, dissipation


def _dissipation_dataset(energy: np.ndarray, dissipation: np.ndarray, step_dt: float,
                         idx: np.ndarray) -> xr.Dataset:
    """The data set of :func:`dissipation_along_rollout` from ``V`` and ``<mu, M mu>`` (sample, step)."""
    rate = np.full_like(energy, np.nan)
    rate[:, :-1] = np.diff(energy, axis=1) / step_dt
    steps = np.arange(energy.shape[1], dtype=np.int64)
    return xr.Dataset(
        {
            "energy": (("sample", "step"), energy, {"long_name": "learned free energy V_theta",
                                                    "units": "model energy unit"}),
            "dissipation": (("sample", "step"), dissipation, {
                "long_name": "dissipation <mu, M mu> (continuous-time -dV/dt)", "units": "model energy unit / time"}),
            "energy_rate": (("sample", "step"), rate, {"long_name": "(V(u^(s+1)) - V(u^s)) / dt",
                                                       "units": "model energy unit / time"}),
        },
        coords={"sample": _sample_coord(idx),
                "step": ("step", steps, {"long_name": "step", "units": "1"}),
                "time": ("step", steps * step_dt, {"long_name": "time since frame 0",
                                                   "units": "time unit of the data"})},
    )


def dissipation_along_rollout(model: Any, data: xr.Dataset, *, samples: Sequence[int], n_steps: int | None = None,
                              dt: float | None = None, stepper: str | None = None, along: str = "rollout",
                              dtype: str = "float64", device: str = "auto") -> xr.Dataset:
    """The dissipation ``<mu, M mu>`` and the discrete energy rate along rollouts (or the true trajectories).

    For a gradient flow ``dV/dt = -<mu, M mu>`` in continuous time; the discrete rate
    ``(V(u^{s+1}) - V(u^s)) / dt`` of a stepper approaches it as ``dt -> 0`` (and is ``<= 0`` for the
    stabilized stepper at every ``dt``).

    Parameters
    ----------
    model
        A model with ``energy`` and ``dissipation_rate`` (``-<mu, M mu>``): SpecOnsNet, the true-``V`` ablation.
    data
        Fields data set.
    samples
        Trajectories.
    n_steps, dt, stepper
        Rollout length (default the data's frames), step (default ``model.dt``) and stepper (default the
        model's); ``along="truth"`` uses the data's frames and spacing instead.
    along : {"rollout", "truth"}
        States from a rollout from frame 0, or the data's frames.
    dtype, device
        Precision and device.

    Returns
    -------
    xarray.Dataset
        ``energy``, ``dissipation`` (``<mu, M mu> >= 0``) and ``energy_rate`` (``(V^{s+1} - V^s) / dt``, NaN at the
        last step) ``(sample, step)``, coordinate ``time`` on ``step``.
    """
    _require(model, "energy", "the dissipation along rollouts")
    _require(model, "dissipation", "the dissipation along rollouts")
    if along not in ("rollout", "truth"):
        raise ValueError(f"along must be 'rollout' or 'truth', got {along!r}.")
    idx = _samples(data, samples)
    torch_dtype, torch_device = _prepare(model, dtype, device)
    times = _times(data)
    step, truth = None, None
    if along == "truth":
        states = _frames(data, idx)
        step_dt, n = float(np.mean(np.diff(times))), states.shape[1] - 1
        truth = lambda s: torch.as_tensor(states[:, s], dtype=torch_dtype, device=torch_device)  # noqa: E731
    else:
        step_dt = float(model.dt if dt is None else dt)
        n = times.size - 1 if n_steps is None else int(n_steps)
        step = lambda u: guarded_step(model, u, dt=step_dt, stepper=stepper)  # noqa: E731
    if n < 1:
        raise ValueError(f"n_steps must be at least 1, got {n}.")
    u0 = torch.as_tensor(_frames(data, idx, time=slice(0, 1))[:, 0], dtype=torch_dtype, device=torch_device)
    ds = _dissipation_dataset(*_record_states(model, u0, n, step, truth), step_dt, idx)
    settings = {"along": along, "dt": step_dt, "n_steps": n,
                "stepper": "none" if along == "truth" else _stepper_name(model, stepper),
                "dtype": dtype}
    ds.attrs = _attrs(model, data, "dissipation_along_rollout", "dissipation and energy rate along "
                      + ("rollouts" if along == "rollout" else "the true trajectories"), settings, idx)
    return ds
