"""Prediction against truth: one test trajectory rolled out by the model over the whole horizon, beside the data.

The numbers behind the ``prediction`` figure (space-time images in 1-D, snapshots in 2-D): the figure reads this
file and never a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from mesodyn.diagnostics._common import _attrs, _frames, _prepare, _samples, _time_coord, _times
from mesodyn.metrics import CLAMP_THRESHOLD, relative_rmse, truth_mean_square

__all__ = ["prediction"]


def prediction(model: Any, data: xr.Dataset, *, samples: Sequence[int], dtype: str = "float32",
               device: str = "auto") -> xr.Dataset:
    """Roll the model out from frame 0 of the first of ``samples`` (a test trajectory) for as many steps as the
    data hold frames, and keep the prediction, the truth and their difference at every frame.

    The rollout is the evaluation's (:func:`mesodyn.rollout.rollout`, float32 by default, the paper's precision); a
    state that is no longer finite ends it, and the later frames of the prediction are NaN.

    Parameters
    ----------
    model
        Any model of the interface (``step``, ``dt``); its ``dt`` must be the data's frame spacing.
    data
        A fields data set (only the chosen trajectory is read).
    samples
        Candidate trajectories; the first is drawn.
    dtype, device
        Precision and device of the rollout.

    Returns
    -------
    xarray.Dataset
        ``prediction``, ``truth`` and ``error`` (prediction minus truth), dims ``(time, x)`` or ``(time, y, x)``
        (float32 on disk: a figure's resolution), ``rel_rmse`` ``(time,)`` (the evaluation's metric, 0 at frame 0)
        and ``diverged_frame`` (−1: never), with the data's grid coordinates.
    """
    from mesodyn.fields import grid_from_data
    from mesodyn.rollout import guarded_step, rollout

    idx = _samples(data, samples)[:1]
    frame_dt = grid_from_data(data)["dt"]
    if not np.isclose(float(model.dt), frame_dt, rtol=1e-6, atol=0.0):
        raise ValueError(f"the model steps dt = {float(model.dt):g} but the data's frames are {frame_dt:g} apart.")
    torch_dtype, torch_device = _prepare(model, dtype, device)
    truth = _frames(data, idx)[0]  # (time, *grid), float64
    grid_axes = truth.ndim - 1
    pred = np.full_like(truth, np.nan)
    pred[0] = truth[0]

    def record(s: int, state: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        values = state.detach().to(torch.float64).cpu().numpy()[0]
        finite = bool(np.isfinite(values).all())
        if finite:
            pred[s] = values
        return torch.tensor([not finite])

    state = torch.as_tensor(truth[:1], dtype=torch_dtype, device=torch_device)
    diverged = int(rollout(lambda v: guarded_step(model, v), state, n_steps=truth.shape[0] - 1,
                           on_step=record)[0])
    error = pred - truth
    rel = relative_rmse(pred, truth, grid_axes=grid_axes, denominator=truth_mean_square(truth, grid_axes=grid_axes))
    dims = ("time", *data["u"].dims[2:])
    units = "unit of u"
    ds = xr.Dataset(
        {
            "prediction": (dims, pred.astype(np.float32), {"long_name": "the model's rollout from frame 0",
                                                           "units": units}),
            "truth": (dims, truth.astype(np.float32), {"long_name": "the data", "units": units}),
            "error": (dims, error.astype(np.float32), {"long_name": "prediction minus truth", "units": units}),
            "rel_rmse": (("time",), np.asarray(rel, dtype=np.float64), {
                "long_name": "relative RMSE of the prediction at each frame (the evaluation's metric, unclamped)",
                "units": "1"}),
            "diverged_frame": ((), np.int64(diverged), {
                "long_name": "first frame at which the rollout is not finite (-1: never)", "units": "1"}),
        },
        coords={"time": _time_coord(_times(data)),
                **{dim: (dim, np.asarray(data[dim].values, dtype=np.float64), dict(data[dim].attrs))
                   for dim in dims[1:]}},
    )
    ds.attrs = _attrs(model, data, "prediction", "prediction against truth on a test trajectory",
                      {"dtype": dtype, "clamp_threshold": CLAMP_THRESHOLD}, idx)
    return ds
