"""The one metric: the paper's relative RMSE and the authors' divergence clamp (torch-free).

For a prediction ``û`` and the truth ``u`` of one trajectory at one step,

    e = sqrt( mean_x (û − u)² / (mean_x u² + 1e-12) ),

the mean running over the grid points (1-D or 2-D). :func:`relative_rmse` computes it on NumPy arrays and, with the
same operations in the same order, on PyTorch tensors (so a rollout measures its error on its own device without
this module importing PyTorch). :func:`clamp_diverged` is the authors' clamp of an evaluation set's errors
(arXiv 2605.16211; their code MLDS-NUS/Meso-SpecOnsNet).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EPS", "CLAMP_THRESHOLD", "truth_mean_square", "relative_rmse", "clamp_diverged"]

EPS = 1e-12
"""Added to the mean square of the truth in the metric's denominator (the authors' value)."""
CLAMP_THRESHOLD = 1.0
"""An error at or above this (or non-finite) counts as divergence."""


def _grid_axes(x: Any, grid_axes: int) -> tuple[int, ...]:
    return tuple(range(x.ndim - grid_axes, x.ndim))


def truth_mean_square(true: Any, *, grid_axes: int) -> Any:
    """The metric's denominator ``mean_x u² + EPS`` over the trailing ``grid_axes`` axes of ``true`` (a NumPy array
    or a PyTorch tensor; the result is of the same kind). A rollout computes it once per batch of trajectories."""
    return (true**2).mean(axis=_grid_axes(true, grid_axes)) + EPS


def relative_rmse(pred: Any, true: Any, *, grid_axes: int | None = None, denominator: Any = None) -> Any:
    """Relative RMSE, averaged over the grid axes.

    Parameters
    ----------
    pred, true : array_like, shape (trajectory, step, *grid), or arrays or tensors of shape (..., *grid)
        Prediction and truth. Without ``grid_axes`` both are converted to float64 NumPy arrays of shape
        ``(trajectory, step, *grid)`` (``grid`` is one axis or two). With ``grid_axes`` they are used as given
        (NumPy arrays or PyTorch tensors, float64 for the paper's metric) and the mean runs over their trailing
        ``grid_axes`` axes.
    grid_axes : int, optional
        Number of trailing grid axes; default: the layout ``(trajectory, step, *grid)``.
    denominator : array or tensor, optional
        :func:`truth_mean_square` of ``true``, when the caller has it already.

    Returns
    -------
    numpy.ndarray (or tensor), shape (trajectory, step) (or the leading shape)
        ``sqrt(mean_x (pred − true)² / (mean_x true² + 1e-12))``; non-finite where the prediction is.
    """
    if grid_axes is None:
        pred = np.asarray(pred, dtype=np.float64)
        true = np.asarray(true, dtype=np.float64)
        if pred.shape != true.shape:
            raise ValueError(f"pred and true must have the same shape, got {pred.shape} and {true.shape}.")
        if pred.ndim < 3:
            raise ValueError(f"arrays must have shape (trajectory, step, *grid), got {pred.shape}.")
        grid_axes = pred.ndim - 2
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged rollout is a result, not a warning
        num = ((pred - true) ** 2).mean(axis=_grid_axes(pred, grid_axes))
        den = truth_mean_square(true, grid_axes=grid_axes) if denominator is None else denominator
        return (num / den) ** 0.5  # ** 0.5 is sqrt for NumPy arrays and PyTorch tensors alike (bit for bit)


def clamp_diverged(err: Any, *, threshold: float = CLAMP_THRESHOLD) -> tuple[np.ndarray, int | None]:
    """The authors' divergence clamp on the errors of one evaluation set.

    Parameters
    ----------
    err : array_like, shape (trajectory, step)
        Errors ``e_i(t)`` of every trajectory of the set.
    threshold : float
        Divergence level (1: the prediction is as far from the truth as the truth is from zero).

    Returns
    -------
    clamped : numpy.ndarray, shape (trajectory, step)
        A copy of ``err`` with ``e_i(t) = 1`` for every ``i`` and every ``t ≥ t*``.
    t_star : int or None
        Position along the step axis of the first step at which any trajectory has ``e ≥ threshold`` or a
        non-finite error; ``None`` if there is none.
    """
    err = np.array(err, dtype=np.float64)
    if err.ndim != 2:
        raise ValueError(f"err must have shape (trajectory, step), got {err.shape}.")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(err) | (err >= threshold)
    steps = np.flatnonzero(bad.any(axis=0))
    if steps.size == 0:
        return err, None
    t_star = int(steps[0])
    err[:, t_star:] = 1.0
    return err, t_star
