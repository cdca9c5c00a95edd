r"""What a model learned, and whether it is identified: its linear response and symbols across independent fits.

The paper (arXiv 2605.16211) proves that the factorization ``du/dt = -(M + W) dV/du`` is identified up to the gauge
``(M, W, V) -> (M/c, W/c, c V)``. Whether a *trained* member is, is a question for the data: two fits that predict
equally well may still hold different operators. This module measures it.

Quantities (all gauge invariant, all per fit):

* the one-step map linearized about a uniform state ``u = s``: a translation-invariant model maps ``cos(k x)`` to
  ``Re(G(k) exp(i k x))``, so its multiplier ``G(k)`` is read from one central difference per mode
  (:func:`linear_response`; any model with a ``step``, baselines included). ``rate = log(G) / dt`` is the
  continuous-time rate whose exact flow the trained map reproduces over one step: for the true dynamics it is the
  PDE's linear symbol, whatever the stepper. ``euler_rate = (G - 1) / dt`` is the rate of the model's own
  generator when it steps with explicit Euler; where the two differ the model has learned the *step* (the
  Euler map of a stiff decay) rather than the continuous operator;
* ``b m(k)`` and ``b phi(k)``, the symbols of ``M`` and ``W`` in the ``b = 1`` gauge, and ``F''(u) / b``, the
  curvature of the learned local density in that gauge (models that declare their energy's parts);
* the truth where it is known (:func:`true_linear_rate`): Allen–Cahn, KdV, and the chains' exact linear
  dispersion (:mod:`mesodyn.chains.dispersion`); for the chains also the dispersion of the lattice *as simulated*
  (velocity Verlet at the data's step), which is what the data hold.

The agreement is measured over the modes holding 99.9 % of the data's spectral energy (the only ones the data
constrain, :func:`mesodyn.diagnostics.spectral_extent`): the relative spread across fits and the relative
residual against the truth (:func:`identifiability`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.diagnostics._common import _frames, _prepare, _samples, _stepper_name
from mesodyn.diagnostics.operators import _symbols, spectral_extent
from mesodyn.fields import dataset_name
from mesodyn.models import capabilities
from mesodyn.models import model_name as _model_name
from mesodyn.provenance import provenance_attrs, to_netcdf_attrs
from mesodyn.rollout import guarded_step

__all__ = ["linear_response", "true_linear_rate", "relative_spread", "relative_residual", "identifiability"]

TRUTH_SYSTEMS = ("allen_cahn", "kdv", "cahn_hilliard", "fput", "fene")
"""Systems whose linear rate about a uniform state is known (:func:`true_linear_rate`)."""


def _grid(model: Any) -> tuple[list[int], list[float]]:
    cfg = dict(getattr(model, "config", {}) or {})
    try:
        return [int(n) for n in cfg["shape"]], [float(L) for L in cfg["length"]]
    except KeyError:
        raise ValueError(f"model {_model_name(model)!r} records no grid (shape, length) in its config.") from None


def linear_response(model: Any, *, state: float = 0.0, dt: float | None = None, stepper: str | None = None,
                    delta: float = 1e-4, dtype: str = "float64", device: str = "auto") -> dict[str, np.ndarray]:
    """Multipliers ``G(k)`` of the model's one-step map linearized about the uniform field ``u = state``.

    Each mode ``k = 0 .. n/2`` along the last axis (in 2-D: fields constant in ``y``) is probed by a central
    difference of ``step(state +- delta cos(k x))``; ``G(k)`` is twice the ``k``-th Fourier coefficient of the
    response (once at ``k = 0`` and at Nyquist, where ``G`` is real).

    Returns
    -------
    dict
        ``k`` (wavenumbers), ``G`` (complex multipliers), ``rate = log(G) / dt`` (principal branch: valid while
        ``|Im rate| dt < pi``), ``euler_rate = (G - 1) / dt`` and ``leakage``, the share of each response's norm
        outside mode ``k`` (zero for a translation-invariant map; a measure of how far a model is from one).
    """
    torch_dtype, torch_device = _prepare(model, dtype, device)
    shape, length = _grid(model)
    n, L = shape[-1], length[-1]
    step_dt = float(model.dt if dt is None else dt)
    modes = np.arange(n // 2 + 1)
    x = np.arange(n) * L / n
    k = 2 * np.pi / L * modes
    probe = np.cos(np.outer(k, x))  # (mode, x)
    probe = np.broadcast_to(probe.reshape((modes.size,) + (1,) * (len(shape) - 1) + (n,)), (modes.size, *shape))
    base = torch.full((modes.size, *shape), float(state), dtype=torch_dtype, device=torch_device)
    v = torch.as_tensor(np.array(probe), dtype=torch_dtype, device=torch_device)
    plus = guarded_step(model, base + delta * v, dt=dt, stepper=stepper)
    minus = guarded_step(model, base - delta * v, dt=dt, stepper=stepper)
    response = ((plus - minus) / (2 * delta)).double().cpu().numpy()
    response = response.reshape(modes.size, -1, n).mean(axis=1)  # average over y (2-D)
    coeff = np.fft.rfft(response, axis=-1) / n
    G = coeff[modes, modes] * np.where((modes == 0) | (2 * modes == n), 1.0, 2.0)
    own = np.abs(coeff[modes, modes]) ** 2 * np.where((modes == 0) | (2 * modes == n), 1.0, 2.0)
    weights = np.where((np.arange(coeff.shape[1]) == 0) | (2 * np.arange(coeff.shape[1]) == n), 1.0, 2.0)
    total = (np.abs(coeff) ** 2 * weights).sum(axis=1)
    leakage = np.sqrt(np.clip(1.0 - own / np.where(total > 0, total, 1.0), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.log(G.astype(np.complex128)) / step_dt
    return {"k": k, "G": G, "rate": rate, "euler_rate": (G - 1) / step_dt, "leakage": leakage}


def true_linear_rate(system: str, k: Any, *, state: float = 0.0, attrs: Mapping[str, Any] | None = None,
                     as_simulated: bool = False) -> np.ndarray:
    """The true ``lambda(k)`` of ``du_hat/dt = lambda u_hat`` linearized about the uniform field ``u = state``.

    * ``allen_cahn``: ``u_t = lap u + (u - u^3) / eps^2``: ``-k^2 - (3 s^2 - 1) / eps^2`` (``eps`` from ``attrs``,
      default 0.1);
    * ``kdv``: ``u_t + 6 u u_x + u_xxx = 0``: ``i (k^3 - 6 s k)``;
    * ``cahn_hilliard``: ``u_t = (u^3 - u - kappa u_xx)_xx``: ``-k^2 (kappa k^2 + 3 s^2 - 1)`` (``kappa`` from
      ``attrs``);
    * ``fput``, ``fene``: the lattice's exact dispersion in the data's frame
      (:func:`mesodyn.chains.dispersion.mesoscopic_linear_rate`; ``attrs`` are the fields file's), or with
      ``as_simulated`` that of the velocity-Verlet step the data were simulated with.
    """
    k = np.asarray(k, dtype=np.float64)
    s = float(state)
    if system == "allen_cahn":
        eps = float((attrs or {}).get("epsilon", 0.1))
        return (-(k**2) - (3 * s**2 - 1) / eps**2).astype(np.complex128)
    if system == "kdv":
        return 1j * (k**3 - 6 * s * k)
    if system == "cahn_hilliard":
        kappa = float((attrs or {})["kappa"])
        return (-(k**2) * (kappa * k**2 + 3 * s**2 - 1)).astype(np.complex128)
    if system in ("fput", "fene"):
        from mesodyn.chains.dispersion import mesoscopic_linear_rate

        return mesoscopic_linear_rate({"model": system, **dict(attrs or {})}, k, state=s, as_simulated=as_simulated)
    raise ValueError(f"system must be one of {', '.join(TRUTH_SYSTEMS)}, got {system!r}.")


def relative_spread(values: np.ndarray) -> float:
    """Spread of several fits' versions of one quantity, ``values`` ``(fit, mode)`` (complex allowed):
    ``sqrt(mean over fits and modes |q_f - q_mean|^2) / sqrt(mean over modes |q_mean|^2)``. NaN for one fit."""
    q = np.asarray(values)
    if q.shape[0] < 2:
        return float("nan")
    mean = q.mean(axis=0)
    scale = np.sqrt(np.mean(np.abs(mean) ** 2))
    return float(np.sqrt(np.mean(np.abs(q - mean) ** 2)) / scale) if scale > 0 else float("nan")


def relative_residual(values: np.ndarray, truth: np.ndarray, *, per_mode: bool = True) -> tuple[float, float]:
    """The worst fit's ``(||q - q_true|| / ||q_true||, max over modes of the deviation)``, ``values`` ``(fit,
    mode)``, over the modes where the truth is not zero. The per-mode deviation is ``|q - q_true| / |q_true|``
    (``per_mode``: for symbols, whose truth keeps away from zero) or ``|q - q_true| / rms(q_true)`` (for rates,
    whose truth crosses zero, e.g. Allen–Cahn's ``1/eps^2 - k^2``)."""
    q, t = np.asarray(values), np.asarray(truth)
    sel = np.abs(t) > 0
    if not sel.any():
        return float("nan"), float("nan")
    err = np.abs(q[:, sel] - t[sel])
    l2 = np.sqrt((err**2).sum(axis=1)) / np.sqrt((np.abs(t[sel]) ** 2).sum())
    scale = np.abs(t[sel]) if per_mode else np.sqrt(np.mean(np.abs(t[sel]) ** 2))
    return float(l2.max()), float((err / scale).max())


def _curvature(model: Any, u: np.ndarray, b: float) -> np.ndarray:
    """``F''(u) / b`` of the learned local density on the values ``u`` (central differences of ``F`` in float64)."""
    h = 1e-3 * max(1.0, float(np.abs(u).max()))
    grid = torch.as_tensor(np.concatenate([u - h, u, u + h]), dtype=torch.float64)
    with torch.no_grad():
        f = model.local_density(grid.to(next(iter(model.parameters())).device)).double().cpu().numpy()
    lo, mid, hi = np.split(f, 3)
    return (hi - 2 * mid + lo) / h**2 / b


def _fit_quantities(model: Any, *, states: Sequence[float], u_values: np.ndarray, stepper: str | None,
                    dtype: str, device: str) -> dict[str, np.ndarray]:
    """Everything :func:`identifiability` compares for one fit, on the modes of its grid's last axis."""
    out: dict[str, np.ndarray] = {}
    for name, s in zip(("zero", "mean"), states):
        resp = linear_response(model, state=s, stepper=stepper, dtype=dtype, device=device)
        out["k"] = resp["k"]
        out[f"rate_{name}"], out[f"euler_rate_{name}"] = resp["rate"], resp["euler_rate"]
        out[f"leakage_{name}"] = resp["leakage"]
    caps = capabilities(model)
    if caps.operators:
        sym = _symbols(model)
        n_last = sym["b_m"].shape[-1]
        index = (0,) * (sym["b_m"].ndim - 1) + (slice(0, n_last // 2 + 1),)
        out["b_m"], out["b_phi"] = sym["b_m"][index], sym["b_phi"][index]
        out["symbol"] = out["b_m"] + 1j * out["b_phi"]
        if caps.energy_parts:
            out["f2_over_b"] = _curvature(model, u_values, float(sym["b"]))
    return out


_LONG_NAMES = {
    "rate_zero": "log(G)/dt of the one-step map linearized about u = 0",
    "rate_mean": "log(G)/dt of the one-step map linearized about the data's mean state",
    "euler_rate_zero": "(G - 1)/dt about u = 0 (the generator's rate of an explicit-Euler model)",
    "euler_rate_mean": "(G - 1)/dt about the data's mean state",
    "b_m": "b times the symbol m(k) of M (gauge invariant)",
    "b_phi": "b times the symbol phi(k) of W = i phi (gauge invariant)",
    "symbol": "b (m(k) + i phi(k)), the symbol of M + W in the b = 1 gauge",
    "f2_over_b": "F''(u)/b, curvature of the learned local density in the b = 1 gauge",
}


def _truths(system: str | None, k: np.ndarray, states: Sequence[float], attrs: Mapping[str, Any]) -> dict:
    """The true rates (and, for the PDEs, the true Onsager symbols in the b = 1 gauge) on the modes ``k``."""
    if system is None:
        return {}
    out = {f"true_rate_{name}": true_linear_rate(system, k, state=s, attrs=attrs)
           for name, s in zip(("zero", "mean"), states)}
    if system in ("fput", "fene") and "dt_chain" in attrs:
        out.update({f"simulated_rate_{name}": true_linear_rate(system, k, state=s, attrs=attrs, as_simulated=True)
                    for name, s in zip(("zero", "mean"), states)})
    if system == "allen_cahn":
        out["true_symbol"] = np.ones_like(k, dtype=np.complex128)
    elif system == "kdv":
        n = 2 * (k.size - 1)  # W's symbol is zero on the self-conjugate Nyquist mode by construction
        out["true_symbol"] = -1j * k * (2 * np.arange(k.size) != n)
    elif system == "cahn_hilliard":  # M = -d^2/dx^2 and V's gradient term kappa/2 u_x^2: b m = kappa k^2
        out["true_symbol"] = (float(attrs["kappa"]) * k**2).astype(np.complex128)
    return out


def _complex_split(name: str, value: np.ndarray, dims: tuple, long_name: str) -> dict:
    units = "1 / time unit of the data" if "rate" in name else "1"
    if np.iscomplexobj(value):
        return {f"{name}_real": (dims, value.real, {"long_name": f"real part of {long_name}", "units": units}),
                f"{name}_imag": (dims, value.imag, {"long_name": f"imaginary part of {long_name}", "units": units})}
    return {name: (dims, value, {"long_name": long_name, "units": "1"})}


def _scores(per_fit: dict[str, np.ndarray], truths: dict[str, np.ndarray], sel: np.ndarray) -> dict[str, float]:
    """Spread across fits and residual against the truth, over the selected modes, per compared quantity."""
    scores: dict[str, float] = {}
    for name in ("symbol", "rate_zero", "rate_mean"):
        if name not in per_fit:
            continue
        values = per_fit[name][:, sel]
        scores[f"{name}_spread"] = relative_spread(values)
        if f"true_{name}" in truths:
            scores[f"{name}_residual"], scores[f"{name}_max_mode_error"] = relative_residual(
                values, truths[f"true_{name}"][sel], per_mode=name == "symbol")
        if f"simulated_{name}" in truths:
            scores[f"{name}_simulated_residual"] = relative_residual(values, truths[f"simulated_{name}"][sel],
                                                                     per_mode=False)[0]
    if "f2_over_b" in per_fit:
        scores["f2_over_b_spread"] = relative_spread(per_fit["f2_over_b"])
    return scores


def identifiability(models: Sequence[Any], data: xr.Dataset, *, labels: Sequence[str], samples: Sequence[int],
                    system: str | None = None, fraction: float = 0.999, stepper: str | None = None,
                    dtype: str = "float64", device: str = "auto") -> xr.Dataset:
    """The learned linear dynamics and symbols of several fits of one data set, their spread and their truth.

    Parameters
    ----------
    models
        Fits of the same hypothesis (training seeds, disjoint halves of the training trajectories, ...), on the
        data set's grid.
    data
        The fields data set (its attributes name the chain for the chains' truth).
    labels
        A name per fit (``fit`` coordinate), e.g. ``"seed42"``.
    samples
        Trajectories that fix the compared modes (``|k| <= K`` holding ``fraction`` of their spectral energy) and
        the data's mean state (the mean of ``u`` over them): the runs' held-out test trajectories.
    system : {"allen_cahn", "kdv", "cahn_hilliard", "fput", "fene"}, optional
        The known truth (:func:`true_linear_rate`).
    fraction
        Share of the spectral energy that fixes the compared modes.

    Returns
    -------
    xarray.Dataset
        Dims ``fit`` and ``k`` (and ``u_value`` for ``F''/b``): ``rate_{zero,mean}_{real,imag}``,
        ``euler_rate_...``, ``leakage_...``, ``b_m``, ``b_phi``, ``symbol_{real,imag}`` (``b (m + i phi)``),
        ``f2_over_b`` (as the models allow), the truth ``true_...`` where known, ``energetic`` (the compared
        modes), and the scalars ``{q}_spread`` (``q``: symbol, rate_zero, rate_mean, f2_over_b), ``{q}_residual``
        and ``{q}_max_mode_error`` (:func:`relative_spread`, :func:`relative_residual`; the symbol's deviation per
        mode, the rates' in units of the true rate's rms).
    """
    if len(models) != len(labels) or not models:
        raise ValueError("give one label per model, and at least one model.")
    if system is not None and system not in TRUTH_SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(TRUTH_SYSTEMS)} or None, got {system!r}.")
    idx = _samples(data, samples)
    frames = np.concatenate([_frames(data, np.asarray([i]))[0].ravel() for i in idx])
    states = (0.0, float(frames.mean()))
    lo, hi = np.quantile(frames, [0.001, 0.999])
    u_values = np.linspace(lo, hi, 41)
    fits = [_fit_quantities(m, states=states, u_values=u_values, stepper=stepper, dtype=dtype, device=device)
            for m in models]
    keys = [key for key in fits[0] if key != "k" and all(key in f for f in fits)]
    k = fits[0]["k"]
    per_fit = {key: np.stack([f[key] for f in fits]) for key in keys}
    k_max = spectral_extent(data, samples=idx, fraction=fraction)
    sel = (k <= k_max + 1e-9) & (k > 0)
    truths = _truths(system, k, states, data.attrs)
    data_vars: dict[str, Any] = {}
    for key, value in per_fit.items():
        dims = ("fit", "u_value") if key == "f2_over_b" else ("fit", "k")
        data_vars.update(_complex_split(key, value, dims, _LONG_NAMES.get(key, key.replace("_", " "))))
    for key, value in truths.items():
        what = ("the truth's " + key[5:] if key.startswith("true_") else
                "the rate of the lattice as simulated (velocity Verlet at the data's dt_chain), " + key[10:])
        data_vars.update(_complex_split(key, value, ("k",), what.replace("_", " ")))
    data_vars["energetic"] = (("k",), sel.astype(np.int8), {
        "long_name": f"compared mode: 0 < k <= {k_max:g}, holding {fraction:.4g} of the data's spectral energy",
        "units": "1"})
    for key, value in _scores(per_fit, truths, sel).items():
        data_vars[key] = ((), value, {"long_name": key.replace("_", " "), "units": "1"})
    data_vars["mean_state"] = ((), states[1], {"long_name": "mean of u over the trajectories", "units": "unit of u"})
    data_vars["k_energetic"] = ((), k_max, {"long_name": "largest compared wavenumber",
                                            "units": "1 / length unit of the data"})
    coords = {"fit": ("fit", np.asarray(list(labels), dtype=object), {"long_name": "fit", "units": "1"}),
              "k": ("k", k, {"long_name": "wavenumber along x", "units": "1 / length unit of the data"}),
              "u_value": ("u_value", u_values, {"long_name": "value of u", "units": "unit of u"})}
    ds = xr.Dataset(data_vars, coords=coords)
    settings = {"system": system or "none", "fraction": fraction, "stepper": _stepper_name(models[0], stepper),
                "dtype": dtype, "fits": ",".join(labels)}
    attrs: dict[str, Any] = {"title": "identifiability: learned linear dynamics and symbols across fits",
                             "diagnostic": "identifiability", "model": _model_name(models[0]),
                             "dataset": dataset_name(data) or "unknown",
                             "dt_train": float(models[0].dt), **settings,
                             "samples": ",".join(str(int(i)) for i in idx)}
    attrs.update(provenance_attrs({"model": dict(getattr(models[0], "config", {}) or {}),
                                   "diagnostic": {"kind": "identifiability", **settings}}))
    ds.attrs = to_netcdf_attrs(attrs)
    return ds
