"""Ensemble driver: draw initial conditions, integrate with the Numba kernels, keep accepted trials in order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from mesodyn.chains.initial import SineDraws, draw_sine_modes, sine_field
from mesodyn.chains.integrators import (
    advance_displacement,
    advance_displacement_serial,
    advance_strain,
    advance_strain_serial,
)
from mesodyn.chains.models import ChainModel

__all__ = ["ChainEnsemble", "initial_state", "integrate", "simulate_ensemble", "lab_times", "strain_of"]


@dataclass(frozen=True)
class ChainEnsemble:
    """Saved frames of an ensemble of accepted trajectories.

    ``state``/``velocity``: ``(sample, time, site)`` — ``r, dr/dt`` (strain form) or ``q, dq/dt`` (displacement
    form); ``strain``: ``r_n`` at each frame (equal to ``state`` in strain form); ``t_lab``: ``(time,)``;
    ``peak``: per sample, the largest checked max |r| (strain form) or max |r|/R (displacement form);
    ``trial``: 1-based position of each accepted trial in the RNG stream; ``n_trials``: trials drawn.
    """

    model: ChainModel
    draws: SineDraws
    state: np.ndarray
    velocity: np.ndarray
    strain: np.ndarray
    t_lab: np.ndarray
    peak: np.ndarray
    trial: np.ndarray
    n_trials: int


def initial_state(model: ChainModel, draws: SineDraws) -> tuple[np.ndarray, np.ndarray]:
    """The right-moving long wave of the draws: ``r_n = ε² u0(εn)``, ``ṙ_n = −c ε³ u0′(εn)``.

    In displacement form ``q`` and ``q̇`` are the cumulative sums of those strains (``q_0 = 0``), minus their means.
    """
    eps = model.epsilon
    xi = eps * np.arange(model.n_sites)
    r0 = eps**2 * sine_field(draws, xi)
    s0 = -model.c * eps**3 * sine_field(draws, xi, derivative=True)
    if model.amplitude != 1.0:  # ours (out-of-distribution tests); the paper's states are left bit for bit
        r0, s0 = model.amplitude * r0, model.amplitude * s0
    if model.form == "strain":
        return r0, s0
    q = np.zeros_like(r0)
    p = np.zeros_like(s0)
    q[:, 1:] = np.cumsum(r0[:, :-1], axis=1)
    p[:, 1:] = np.cumsum(s0[:, :-1], axis=1)
    return q - q.mean(axis=1, keepdims=True), p - p.mean(axis=1, keepdims=True)


def strain_of(model: ChainModel, state: np.ndarray) -> np.ndarray:
    """Strains ``r_n`` of states of either form (last axis: sites; displacement form: ``q_{n+1} − q_n``)."""
    if model.form == "strain":
        return state.copy()
    return np.roll(state, -1, axis=-1) - state


def lab_times(model: ChainModel) -> np.ndarray:
    """Lab time of each frame, accumulated as ``t += dt_chain`` per substep (as the paper's generator does)."""
    per_frame = model.save_every * model.substeps_effective
    dt = model.dt_chain
    times = np.empty(model.n_frames)
    t = 0.0
    times[0] = t
    for frame in range(1, model.n_frames):
        for _ in range(per_frame):
            t += dt
        times[frame] = t
    return times


def integrate(model: ChainModel, state: np.ndarray, velocity: np.ndarray, *, dt: float, n_steps: int,
              save_every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Velocity Verlet from arbitrary states ``(samples, sites)`` with step ``dt``; no rejection.

    Returns ``(states, velocities)`` of shape ``(samples, n_steps // save_every + 1, sites)``.
    """
    if n_steps % save_every:
        raise ValueError(f"n_steps={n_steps} is not a multiple of save_every={save_every}")
    x = np.array(state, dtype=np.float64, ndmin=2, order="C")
    v = np.array(velocity, dtype=np.float64, ndmin=2, order="C")
    frames = n_steps // save_every + 1
    xs = np.empty((x.shape[0], frames, x.shape[1]))
    vs = np.empty_like(xs)
    xs[:, 0], vs[:, 0] = x, v
    alive = np.ones(x.shape[0], dtype=np.bool_)
    peak = np.zeros(x.shape[0])
    params, kind = model.force_params(), model.force_kind
    small = x.shape[0] < 8
    strain_kernel = advance_strain_serial if small else advance_strain
    displacement_kernel = advance_displacement_serial if small else advance_displacement
    for frame in range(1, frames):
        if model.form == "strain":
            strain_kernel(kind, params, x, v, dt, 1, save_every, np.inf, alive, peak)
        else:
            displacement_kernel(kind, params, x, v, dt, 1, save_every, np.inf, model.R, alive, peak)
        xs[:, frame], vs[:, frame] = x, v
    return xs, vs


def _integrate(model: ChainModel, draws: SineDraws, bar) -> tuple[np.ndarray, ...]:
    n, frames = len(draws), model.n_frames
    x, v = initial_state(model, draws)
    x = np.ascontiguousarray(x)
    v = np.ascontiguousarray(v)
    states = np.empty((n, frames, model.n_sites))
    velocities = np.empty_like(states)
    states[:, 0], velocities[:, 0] = x, v
    alive = np.ones(n, dtype=np.bool_)
    peak = np.zeros(n)
    params, kind, dt = model.force_params(), model.force_kind, model.dt_chain
    for frame in range(1, frames):
        if model.form == "strain":
            advance_strain(kind, params, x, v, dt, model.save_every, model.substeps_effective,
                           model.bound(), alive, peak)
        else:
            advance_displacement(kind, params, x, v, dt, model.save_every, model.substeps_effective,
                                 model.bound(), model.R, alive, peak)
        states[:, frame], velocities[:, frame] = x, v
        bar.update(n)
    return states, velocities, alive, peak


def simulate_ensemble(
    model: ChainModel, *, n_samples: int, seed: int, progress: bool = True, batch_size: int | None = None
) -> ChainEnsemble:
    """Simulate until ``n_samples`` trials are accepted, drawing trials in the paper's order from ``seed``.

    Trials are integrated in batches (all samples of a batch in parallel); rejected trials are replaced by the
    next trials of the stream, so the accepted set equals that of the paper's one-by-one acceptance loop.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    rng = np.random.default_rng(seed)
    batch_size = batch_size or n_samples
    kept: list[tuple[np.ndarray, ...]] = []
    kept_draws: list[SineDraws] = []
    trials: list[np.ndarray] = []
    n_trials = n_accepted = 0
    max_trials = 10 * n_samples + 100
    with tqdm(total=n_samples * (model.n_frames - 1), desc=f"{model.name} chain", unit="traj·frame",
              disable=not progress, unit_scale=True) as bar:
        while n_accepted < n_samples:
            want = min(batch_size, n_samples - n_accepted)
            if n_trials + want > max_trials:
                raise RuntimeError(
                    f"{model.name}: only {n_accepted} of {n_samples} trajectories accepted after {n_trials} trials; "
                    "the rejection bound or the step is probably wrong"
                )
            draws = draw_sine_modes(rng, want, n_modes=model.n_modes, max_k=model.max_k, k_offset=model.k_offset)
            states, velocities, alive, peak = _integrate(model, draws, bar)
            idx = np.flatnonzero(alive)
            kept.append((states[idx], velocities[idx], peak[idx]))
            kept_draws.append(draws.take(idx))
            trials.append(n_trials + 1 + idx)
            n_trials += want
            n_accepted += idx.size
            if idx.size < want:
                bar.total += (want - idx.size) * (model.n_frames - 1)
    state = np.concatenate([k[0] for k in kept])
    return ChainEnsemble(
        model=model,
        draws=SineDraws.concat(kept_draws),
        state=state,
        velocity=np.concatenate([k[1] for k in kept]),
        strain=strain_of(model, state),
        t_lab=lab_times(model),
        peak=np.concatenate([k[2] for k in kept]),
        trial=np.concatenate(trials),
        n_trials=n_trials,
    )
