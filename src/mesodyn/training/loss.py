"""The K-step autoregressive loss of the paper (see :mod:`mesodyn.training`)."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as tF
from torch import nn

__all__ = ["rollout_loss"]


def rollout_loss(model: nn.Module, windows: torch.Tensor, *, rollout_steps: int) -> torch.Tensor:
    """K-step autoregressive loss of a batch of windows ``(batch, L, *grid)``; see the module docstring.

    Returns the mean over the K steps of the mean squared error of each step.
    """
    length = windows.shape[1]
    if not 1 <= rollout_steps < length:
        raise ValueError(f"rollout_steps must lie in [1, {length - 1}] for windows of {length} frames.")
    batch, grid = windows.shape[0], windows.shape[2:]
    n_start = length - rollout_steps
    state = windows[:, :n_start].reshape(batch * n_start, *grid)
    total = windows.new_zeros(())
    # One F' table for the whole rollout (SpecOnsNet's interpolant), fitted on the windows' range with a margin.
    # Its node values stay in the loss's graph after the block, so the backward sums the weights' gradient of
    # every call that read it at its nodes (one backward pass of the exact F' instead of one per call).
    shared = getattr(model, "shared_tables", None)
    with shared(windows) if shared is not None else contextlib.nullcontext():
        for k in range(1, rollout_steps + 1):
            # Detached: each step is trained on its own previous output, never back through it.
            state = model.step(state.detach())
            target = windows[:, k : k + n_start].reshape(batch * n_start, *grid)
            # (mse_loss: the mean of the squared differences as one operator and one autograd node instead of three;
            # the same values and gradients bit for bit)
            total = total + tF.mse_loss(state, target)
    return total / rollout_steps
