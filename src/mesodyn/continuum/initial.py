"""The paper's random initial fields, reproduced draw for draw (``../shared/reference/README.md`` §3–§4).

Each function draws ``n_trials`` consecutive trials from a ``numpy.random.Generator`` in the authors' order
(per trial: mode choice, amplitudes, phases), so trial ``i`` of a call equals trial ``i`` of the authors'
acceptance loop when the generator comes from ``default_rng(seed)`` and earlier trials were drawn first.
Grid values are computed in the authors' operation order, which makes them bit-identical to the reference.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sine_series_1d", "plane_waves_2d", "plane_wave_modes"]


def sine_series_1d(
    rng: np.random.Generator, n_trials: int, *, n_grid: int, max_k: int, n_modes: int, normalize: str,
    k_offset: int = 0,
) -> dict[str, np.ndarray]:
    """PDEBench-style 1-D sine sums with the authors' quirks (KdV and 1-D Allen–Cahn).

    Per trial: ``S = choice(max_k, n_modes, replace=False)``, ``A = uniform(size=max_k)``,
    ``U = uniform(size=max_k)``, ``φ = 2πU``. Amplitudes and phases are drawn for *all* ``max_k`` slots;
    slot ``m`` (1-based) has angular frequency ``2π m s_m / x_len`` with the selection mask ``s_m`` and
    ``x_len = x_{n-1} − x_0 = 2π (n−1)/n`` (not 2π), so unselected slots add the constant ``A_m sin φ_m``
    and the field is periodic over ``n − 1`` cells, not ``n``.

    Parameters
    ----------
    normalize : {"std", "minmax"}
        ``"std"`` (KdV): divide by the population std over the grid (mean kept).
        ``"minmax"`` (Allen–Cahn): divide by the std, then shift and scale to ``[-1, 1]``.
    k_offset : int
        Ours, for out-of-distribution tests: slot ``m`` takes the frequency ``m + k_offset`` (default 0, the
        paper's). The draws are the same; only the band of the selected frequencies moves.

    Returns
    -------
    dict
        ``u0`` (trial, n_grid); ``k`` (trial, max_k) the integer frequency of each slot (``m`` if selected,
        else 0); ``amplitude``, ``phase`` (trial, max_k); ``k_selected`` (trial, n_modes) sorted;
        ``std`` (trial,); for ``"minmax"`` also ``shift`` (the min after the std division) and ``scale``
        (the max after shifting).
    """
    if normalize not in ("std", "minmax"):
        raise ValueError(f"normalize must be 'std' or 'minmax', got {normalize!r}.")
    x = 2 * np.pi * np.arange(n_grid) / n_grid
    x_len = x[-1] - x[0]
    slots = np.arange(1, max_k + 1) + int(k_offset)
    selected = np.zeros((n_trials, max_k))
    amplitude = np.empty((n_trials, max_k))
    phase = np.empty((n_trials, max_k))
    for t in range(n_trials):  # the draws of one trial are consecutive in the stream
        picks = rng.choice(max_k, n_modes, replace=False)
        amplitude[t] = rng.uniform(size=max_k)
        phase[t] = 2 * np.pi * rng.uniform(size=max_k)
        selected[t, picks] = 1.0
    omega = 2 * np.pi * slots * selected / x_len
    raw = np.zeros((n_trials, n_grid))
    for m in range(max_k):  # sequential sum over slots: the authors' summation order, hence bit-exact
        raw = raw + amplitude[:, m, None] * np.sin(omega[:, m, None] * x + phase[:, m, None])
    std = np.std(raw, axis=-1)
    out = {
        "k": (slots * selected).astype(np.int64),
        "amplitude": amplitude,
        "phase": phase,
        "k_selected": np.sort(np.where(selected > 0, slots, 0), axis=-1)[:, max_k - n_modes:],
        "std": std,
        "x_len": x_len,
    }
    f = raw / std[:, None]
    if normalize == "std":
        out["u0"] = f
        return out
    shift = f.min(axis=-1)
    f = f - shift[:, None]
    scale = f.max(axis=-1)
    f = f / scale[:, None]
    out.update(u0=2 * f - 1, shift=shift, scale=scale)
    return out


def plane_wave_modes(max_k: int) -> np.ndarray:
    """The candidate ``(kx, ky)`` pairs: ``kx`` outer, ``ky`` inner over ``-max_k..max_k``, without (0, 0)."""
    r = range(-max_k, max_k + 1)
    return np.array([(kx, ky) for kx in r for ky in r if (kx, ky) != (0, 0)], dtype=np.int64)


def plane_waves_2d(
    rng: np.random.Generator, n_trials: int, *, n_grid: int, max_k: int, n_modes: int, k_offset: int = 0
) -> dict[str, np.ndarray]:
    """The 2-D Allen–Cahn initial fields: ``n_modes`` distinct plane waves, rescaled to ``[-1, 1]``.

    ``k_offset`` (ours, for out-of-distribution tests; default 0, the paper's) moves every nonzero component of a
    drawn wavenumber away from zero by that much, ``kx -> kx + sign(kx) k_offset``, after the same draws.

    Per trial: ``idx = choice(len(modes), n_modes, replace=False)`` over :func:`plane_wave_modes`,
    ``A = uniform(0, 1, n_modes)``, ``φ = uniform(0, 2π, n_modes)``; ``raw = Σ A sin(kx x + ky y + φ)`` on the
    ``n_grid²`` grid (true period 2π), ``u0 = 2 (raw − min)/(max − min) − 1``.

    Returns
    -------
    dict
        ``u0`` (trial, y, x); ``kx``, ``ky``, ``mode_index``, ``amplitude``, ``phase`` (trial, n_modes);
        ``raw_min``, ``raw_max`` (trial,).
    """
    modes = plane_wave_modes(max_k)
    if not 1 <= n_modes <= len(modes):
        raise ValueError(f"n_modes must be between 1 and {len(modes)}, got {n_modes}.")
    length = 2 * np.pi
    x = 2 * np.pi * np.arange(n_grid) / n_grid
    index = np.empty((n_trials, n_modes), dtype=np.int64)
    amplitude = np.empty((n_trials, n_modes))
    phase = np.empty((n_trials, n_modes))
    for t in range(n_trials):
        index[t] = rng.choice(len(modes), n_modes, replace=False)
        amplitude[t] = rng.uniform(0, 1, n_modes)
        phase[t] = rng.uniform(0, 2 * np.pi, n_modes)
    kx, ky = modes[index, 0], modes[index, 1]
    kx, ky = kx + np.sign(kx) * int(k_offset), ky + np.sign(ky) * int(k_offset)
    # Angular wavenumbers first (2π k / L), then the argument: the authors' order, bit-exact.
    wx = 2 * np.pi * kx / length
    wy = 2 * np.pi * ky / length
    xx, yy = x[None, :], x[:, None]  # (y, x) layout
    raw = np.zeros((n_trials, n_grid, n_grid))
    for j in range(n_modes):
        arg = wx[:, j, None, None] * xx + wy[:, j, None, None] * yy + phase[:, j, None, None]
        raw = raw + amplitude[:, j, None, None] * np.sin(arg)
    raw_min = raw.min(axis=(-2, -1))
    raw_max = raw.max(axis=(-2, -1))
    u0 = 2 * (raw - raw_min[:, None, None]) / (raw_max - raw_min)[:, None, None] - 1
    return {"u0": u0, "kx": kx, "ky": ky, "mode_index": index, "amplitude": amplitude, "phase": phase,
            "raw_min": raw_min, "raw_max": raw_max}
