"""The continuum data sets ``kdv``, ``allen_cahn`` and ``allen_cahn_2d`` as fields-contract Datasets.

The acceptance loop follows the authors: trials are drawn in order from ``default_rng(seed)``, each is
solved, and a trial is rejected if any saved value is non-finite or exceeds ``u_bound``; the data set holds
the first ``n_samples`` accepted trials. Trials are simulated in batches (all samples in one array), which
changes no value: every operation acts on one sample at a time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from mesodyn.continuum.initial import plane_waves_2d, sine_series_1d
from mesodyn.continuum.solvers import (
    SCHEMES,
    AllenCahnTerms,
    BlowUpError,
    GKdVTerms,
    Terms,
    frame_schedule,
    integrate,
)
from mesodyn.continuum.spectral import FourierGrid, default_workers

__all__ = ["DATASETS", "KdVConfig", "AllenCahnConfig", "AllenCahn2DConfig", "config_for", "make_dataset"]


@dataclass(frozen=True, kw_only=True)
class _PDEConfig:
    """Parameters shared by the continuum data sets (defaults: the paper's)."""

    n_samples: int = 1000
    n_grid: int = 256
    dt: float = 4e-5
    t_final: float = 0.1
    save_every: int = 25
    scheme: str = "paper"
    max_k: int = 6
    n_modes: int = 3
    u_bound: float = 10.0
    amplitude: float = 1.0
    k_offset: int = 0

    name: ClassVar[str] = ""
    ndim: ClassVar[int] = 1

    def __post_init__(self) -> None:
        for key in ("n_samples", "save_every", "max_k", "n_modes"):
            value = getattr(self, key)
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{self.name}: {key} must be a positive integer, got {value!r}.")
        if not (isinstance(self.n_grid, (int, np.integer)) and self.n_grid >= 8 and self.n_grid % 2 == 0):
            raise ValueError(f"{self.name}: n_grid must be an even integer of at least 8, got {self.n_grid!r}.")
        for key in ("dt", "t_final", "u_bound", "amplitude") + (("epsilon",) if hasattr(self, "epsilon") else ()):
            value = getattr(self, key)
            if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{self.name}: {key} must be a positive finite number, got {value!r}.")
        if self.scheme not in SCHEMES:
            raise ValueError(f"{self.name}: scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}.")
        if self.n_modes > self.n_candidates:
            raise ValueError(f"{self.name}: n_modes = {self.n_modes} exceeds the {self.n_candidates} candidate "
                             f"modes of max_k = {self.max_k}.")
        if not (isinstance(self.k_offset, (int, np.integer)) and not isinstance(self.k_offset, bool)
                and self.k_offset >= 0):
            raise ValueError(f"{self.name}: k_offset must be a non-negative integer, got {self.k_offset!r}.")
        if self.max_k + self.k_offset >= self.n_grid // 2:
            # a mode at or above the Nyquist mode n_grid/2 aliases onto a lower one: the draws (ic_k) would
            # name modes the grid does not hold
            raise ValueError(f"{self.name}: max_k + k_offset = {self.max_k + self.k_offset} reaches the Nyquist mode "
                             f"{self.n_grid // 2} of n_grid = {self.n_grid}; it must be at most "
                             f"{self.n_grid // 2 - 1}.")
        if self.t_final < self.dt * self.save_every:
            raise ValueError(f"{self.name}: t_final = {self.t_final} is shorter than one saved interval "
                             f"(dt * save_every = {self.dt * self.save_every}).")

    @property
    def n_frames(self) -> int:
        """Frames the data set holds (the solver's frame schedule, frame 0 included)."""
        return len(frame_schedule(dt=self.dt, t_final=self.t_final, save_every=self.save_every)[0])

    @property
    def n_candidates(self) -> int:
        """How many modes the initial condition draws from: the ``max_k`` slots (1-D)."""
        return self.max_k

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> _PDEConfig:
        """Build from a config mapping; unknown keys are an error naming the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in params:
            if key not in known:
                raise ValueError(f"{cls.name}: unknown parameter '{key}'; known: {', '.join(sorted(known))}.")
        return cls(**dict(params))

    def as_attrs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class KdVConfig(_PDEConfig):
    """``u_t + 6 u u_x + u_xxx = 0`` on [0, 2π); IC: 3 of 6 sine slots, unit std (the x_len quirk kept)."""

    name: ClassVar[str] = "kdv"


@dataclass(frozen=True, kw_only=True)
class AllenCahnConfig(_PDEConfig):
    """``u_t = u_xx + (u − u³)/ε²`` on [0, 2π); IC: 3 of 10 sine slots, min–max rescaled to [−1, 1]."""

    max_k: int = 10
    epsilon: float = 0.1

    name: ClassVar[str] = "allen_cahn"


@dataclass(frozen=True, kw_only=True)
class AllenCahn2DConfig(_PDEConfig):
    """``u_t = Δu + (u − u³)/ε²`` on [0, 2π)²; IC: 5 plane waves with |kx|, |ky| ≤ 5, rescaled to [−1, 1]."""

    n_grid: int = 128
    max_k: int = 5
    n_modes: int = 5
    epsilon: float = 0.1

    name: ClassVar[str] = "allen_cahn_2d"
    ndim: ClassVar[int] = 2

    @property
    def n_candidates(self) -> int:
        """The plane waves (kx, ky) in [−max_k, max_k]² without (0, 0)."""
        return (2 * self.max_k + 1) ** 2 - 1


DATASETS: dict[str, type[_PDEConfig]] = {
    "kdv": KdVConfig, "allen_cahn": AllenCahnConfig, "allen_cahn_2d": AllenCahn2DConfig}

_EQUATIONS = {
    "kdv": "u_t + 6 u u_x + u_xxx = 0",
    "allen_cahn": "u_t = u_xx + (u - u^3)/epsilon^2",
    "allen_cahn_2d": "u_t = u_xx + u_yy + (u - u^3)/epsilon^2",
}


def config_for(name: str, params: Mapping[str, Any] | None = None) -> _PDEConfig:
    """The validated configuration of data set ``name`` (defaults: the paper's values)."""
    if name not in DATASETS:
        raise ValueError(f"unknown continuum data set {name!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[name].from_mapping(params or {})


def _terms(cfg: _PDEConfig) -> Terms:
    """The equation on its grid. The paper scheme pads 2× (Dedalus' ``dealias=2``), ETDRK4 just enough for
    its polynomial degree."""
    degree = 2 if cfg.name == "kdv" else 3
    padded = 2 * cfg.n_grid if cfg.scheme == "paper" else FourierGrid.dealiased_size(cfg.n_grid, degree)
    grid = FourierGrid(n=cfg.n_grid, ndim=cfg.ndim, padded=padded)
    if cfg.name == "kdv":
        return GKdVTerms(grid, nonlinear=6.0, power=1, dispersion=1.0)
    return AllenCahnTerms(grid, epsilon=cfg.epsilon, scheme=cfg.scheme)


def _draw(cfg: _PDEConfig, rng: np.random.Generator, n_trials: int) -> dict[str, np.ndarray]:
    if cfg.name == "allen_cahn_2d":
        ic = plane_waves_2d(rng, n_trials, n_grid=cfg.n_grid, max_k=cfg.max_k, n_modes=cfg.n_modes,
                            k_offset=cfg.k_offset)
    else:
        ic = sine_series_1d(rng, n_trials, n_grid=cfg.n_grid, max_k=cfg.max_k, n_modes=cfg.n_modes,
                            normalize="std" if cfg.name == "kdv" else "minmax", k_offset=cfg.k_offset)
    if cfg.amplitude != 1.0:  # ours (out-of-distribution tests); the paper's fields are left bit for bit
        ic["u0"] = cfg.amplitude * ic["u0"]
    return ic


def _batch_size(cfg: _PDEConfig) -> int:
    """Samples per thread and solve: large enough for the batched FFTs to pay off, small enough for the work
    arrays to stay cache-sized (chosen with benchmarks/bench_continuum.py on the 2-core machine)."""
    return 1 if cfg.ndim == 2 else 128


def make_dataset(
    name: str,
    *,
    params: Mapping[str, Any],
    seed: int,
    progress: bool = True,
    workers: int | None = None,
) -> xr.Dataset:
    """Generate continuum data set ``name`` (``kdv``, ``allen_cahn`` or ``allen_cahn_2d``).

    Parameters
    ----------
    params : mapping
        Keys of :class:`KdVConfig`, :class:`AllenCahnConfig` or :class:`AllenCahn2DConfig`; missing keys take
        the paper's values.
    seed : int
        Seed of ``numpy.random.default_rng``; with seed 0 and the paper scheme the first samples equal the
        authors' reference data.
    progress : bool
        Show a progress bar over trajectories.
    workers : int, optional
        Threads, each solving its own share of a batch (default: ``OMP_NUM_THREADS`` or the usable CPUs);
        the output does not depend on it.

    Returns
    -------
    xarray.Dataset
        ``u`` (sample, time, x) or (sample, time, y, x), float64. Frame 0 is the initial field as drawn (the
        solver itself starts from its Nyquist-free projection, as Dedalus does). Initial-condition draws:
        1-D ``ic_k``, ``ic_amplitude``, ``ic_phase`` over the ``max_k`` slots (dim ``mode`` = slot number; ``ic_k``
        is the slot's integer frequency, 0 when unselected), ``ic_k_selected`` (sample, pick), ``ic_std``
        and, for Allen–Cahn, ``ic_shift``/``ic_scale``; 2-D ``ic_kx``, ``ic_ky``, ``ic_amplitude``,
        ``ic_phase``, ``ic_mode_index`` (sample, mode), ``ic_raw_min``/``ic_raw_max``. ``rng_trial`` is each
        sample's 1-based position in the trial stream. Every parameter is a global attribute.

    Raises
    ------
    ValueError
        Invalid parameters (one sentence naming the parameter).
    BlowUpError
        Too many trials were rejected (non-finite or above ``u_bound``) to fill the data set.
    """
    cfg = config_for(name, params)
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    workers = int(workers or default_workers())
    terms = _terms(cfg)
    grid = terms.grid
    steps, accumulated = frame_schedule(dt=cfg.dt, t_final=cfg.t_final, save_every=cfg.save_every)
    segments = [(0, cfg.dt)] + [(int(s), cfg.dt) for s in np.diff(steps)]
    # The paper records Dedalus' accumulated sim_time; ETDRK4 frames sit at exact multiples of the step.
    times = accumulated if cfg.scheme == "paper" else steps * cfg.dt

    rng = np.random.default_rng(seed)
    n, batch = cfg.n_samples, _batch_size(cfg) * workers
    max_trials = max(100, 10 * n)
    spatial = (cfg.n_grid,) * cfg.ndim
    u = np.empty((n, len(steps), *spatial))
    draws: dict[str, list[np.ndarray]] = {}
    trial_ids: list[np.ndarray] = []
    n_accepted = n_trials = 0
    bar = tqdm(total=n, disable=not progress, unit="traj", desc=name)
    while n_accepted < n:
        if n_trials >= max_trials:
            raise BlowUpError(
                f"{name}: only {n_accepted} of {n_trials} trials stayed finite and within u_bound = "
                f"{cfg.u_bound:g}; reduce dt or check epsilon and the initial-condition parameters.")
        size = min(batch, n - n_accepted)  # exactly the trials still needed: rejections are rare
        ic = _draw(cfg, rng, size)
        u0 = ic["u0"]
        # A trial whose IC already fails the acceptance rule is rejected without solving it.
        peak0 = np.abs(u0.reshape(size, -1)).max(axis=1)
        candidates = np.flatnonzero(np.isfinite(peak0) & (peak0 <= cfg.u_bound))
        keep = candidates[:0]
        if candidates.size:
            frames, ok = integrate(grid.to_coefficients(u0[candidates]), terms=terms, scheme=cfg.scheme,
                                   segments=segments, u_bound=cfg.u_bound, threads=workers)
            frames[:, 0] = u0[candidates]  # frame 0 is the raw IC, Nyquist and all (the authors' convention)
            keep = candidates[ok]
            u[n_accepted:n_accepted + keep.size] = frames[ok]
        for key, value in ic.items():
            if isinstance(value, np.ndarray) and value.shape[:1] == (size,) and key != "u0":
                draws.setdefault(key, []).append(value[keep])
        trial_ids.append(n_trials + 1 + keep)
        n_accepted += keep.size
        n_trials += size
        bar.update(keep.size)
    bar.close()
    return _to_dataset(cfg, u, {k: np.concatenate(v) for k, v in draws.items()},
                       np.concatenate(trial_ids), times, grid, seed=seed, n_trials=n_trials,
                       x_len=ic.get("x_len"))


def _to_dataset(cfg, u, draws, trial_ids, times, grid, *, seed, n_trials, x_len) -> xr.Dataset:
    dimless = "1"
    x = grid.x
    coords: dict[str, Any] = {
        "sample": ("sample", np.arange(cfg.n_samples), {"long_name": "sample index"}),
        "time": ("time", np.asarray(times, dtype=np.float64), {"long_name": "time", "units": dimless}),
        "x": ("x", x, {"long_name": "position x", "units": dimless}),
    }
    if cfg.ndim == 2:
        coords["y"] = ("y", x.copy(), {"long_name": "position y", "units": dimless})
        field_dims = ("sample", "time", "y", "x")
    else:
        field_dims = ("sample", "time", "x")
    data = {"u": (field_dims, u, {"long_name": f"{cfg.name} field u", "units": dimless})}
    if cfg.ndim == 1:
        coords["mode"] = ("mode", np.arange(1, cfg.max_k + 1), {"long_name": "sine slot m (1-based)"})
        coords["pick"] = ("pick", np.arange(cfg.n_modes), {"long_name": "selected slot, sorted"})
        data.update(
            ic_k=(("sample", "mode"), draws["k"], {"long_name": "integer frequency of the slot (0: unselected); "
                                                    "angular frequency 2*pi*ic_k/x_len"}),
            ic_amplitude=(("sample", "mode"), draws["amplitude"], {"long_name": "amplitude A_m ~ U(0, 1)"}),
            ic_phase=(("sample", "mode"), draws["phase"], {"long_name": "phase 2*pi*U_m", "units": "rad"}),
            ic_k_selected=(("sample", "pick"), draws["k_selected"], {"long_name": "selected slots, sorted"}),
            ic_std=(("sample",), draws["std"], {"long_name": "population std of the raw sine sum"}),
        )
        if cfg.name == "allen_cahn":
            data.update(
                ic_shift=(("sample",), draws["shift"], {"long_name": "min of raw/std (subtracted)"}),
                ic_scale=(("sample",), draws["scale"], {"long_name": "max after the shift (divided by)"}),
            )
    else:
        coords["mode"] = ("mode", np.arange(cfg.n_modes), {"long_name": "plane wave index"})
        data.update(
            ic_kx=(("sample", "mode"), draws["kx"], {"long_name": "wavenumber kx"}),
            ic_ky=(("sample", "mode"), draws["ky"], {"long_name": "wavenumber ky"}),
            ic_amplitude=(("sample", "mode"), draws["amplitude"], {"long_name": "amplitude ~ U(0, 1)"}),
            ic_phase=(("sample", "mode"), draws["phase"], {"long_name": "phase ~ U(0, 2 pi)", "units": "rad"}),
            ic_mode_index=(("sample", "mode"), draws["mode_index"],
                           {"long_name": "index into the (kx outer, ky inner) candidate list"}),
            ic_raw_min=(("sample",), draws["raw_min"], {"long_name": "min of the raw plane-wave sum"}),
            ic_raw_max=(("sample",), draws["raw_max"], {"long_name": "max of the raw plane-wave sum"}),
        )
    data["rng_trial"] = (("sample",), trial_ids.astype(np.int64),
                         {"long_name": "1-based position of the trial in the RNG stream"})
    attrs: dict[str, Any] = {
        "dataset": cfg.name,
        "title": f"{cfg.name}: periodic pseudo-spectral solution ({cfg.scheme} scheme)",
        "equation": _EQUATIONS[cfg.name],
        **cfg.as_attrs(),
        "seed": int(seed),
        "length": 2 * math.pi,
        "padded_grid": grid.padded,
        "nyquist_dropped": 1,
        "time_stepper": ("IMEX SBDF2, SBDF1 first step, linear part implicit (Dedalus SBDF2)"
                         if cfg.scheme == "paper" else "ETDRK4 (Cox-Matthews), linear part exact"),
        "frame0": "the drawn initial field on the grid (before the Nyquist projection)",
        "n_trials": int(n_trials),
        "n_rejected": int(n_trials - cfg.n_samples),
    }
    if x_len is not None:
        attrs["x_len"] = float(x_len)
    return xr.Dataset(data, coords=coords, attrs=attrs)
