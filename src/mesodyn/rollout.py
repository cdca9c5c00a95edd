"""The one rollout engine: the device rule, a guarded step, and autoregressive rollouts that track divergence.

Evaluation (:mod:`mesodyn.evaluation`) and the diagnostics (:mod:`mesodyn.diagnostics`) roll models out the same
way: from a batch of initial fields, one step after the other under ``torch.no_grad()``, a callback after every step
that records what it needs and says which members have diverged by its own rule (a non-finite state, an error or an
energy beyond a bound). A diverged member is recorded once, then continues from zeros so that no step sees
non-finite input, and its later values are not recorded; batch members are independent, so this leaves the others'
values unchanged bit for bit. The rollout stops when every member has diverged.

PyTorch is imported inside the functions, so that the torch-free modules can import :func:`resolve_device`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["resolve_device", "prepare_model", "guarded_step", "rollout"]


def resolve_device(device: Any = "auto"):
    """The one device rule of fit, evaluation and diagnostics: ``"auto"`` is the GPU when one is present, else the
    CPU; ``"cuda"`` without a GPU is an error; anything else is passed to :class:`torch.device`."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA device is available; use 'auto' or 'cpu'.")
    return torch.device(device)


def prepare_model(model: Any, *, dtype: Any, device: Any = "auto"):
    """Move ``model`` (when it is a module) to the device of :func:`resolve_device`, cast it in place to ``dtype``
    and put it in eval mode; return the device."""
    import torch

    from mesodyn.models import cast_module

    torch_device = resolve_device(device)
    if isinstance(model, torch.nn.Module):
        cast_module(model, device=torch_device, dtype=dtype)
        model.eval()
    return torch_device


def guarded_step(model: Any, u: Any, **options: Any):
    """``model.step(u, **options)`` under ``torch.no_grad()`` (options left out where ``None``). A step that takes
    a derivative by autograd must enable it itself; one that fails for that reason is named in the error."""
    import torch

    options = {key: value for key, value in options.items() if value is not None}
    try:
        with torch.no_grad():
            return model.step(u, **options)
    except RuntimeError as exc:
        if "grad" in str(exc):
            name = getattr(model, "name", type(model).__name__)
            raise RuntimeError(
                f"the step of model {name!r} failed under torch.no_grad() ({exc}); a step that needs autograd "
                "must enable it itself with torch.enable_grad()."
            ) from exc
        raise


def rollout(step: Callable[[Any], Any], u0: Any, *, n_steps: int,
            on_step: Callable[[int, Any, Any], Any]) -> np.ndarray:
    """Roll ``u0`` out for ``n_steps`` steps of ``step``, calling ``on_step`` after each.

    Parameters
    ----------
    step : callable
        ``u -> next u`` on a batch ``(batch, *grid)`` (e.g. :func:`guarded_step` with the model and its options).
    u0 : torch.Tensor, shape (batch, *grid)
        Initial fields, on the device and in the dtype of the rollout.
    n_steps : int
        Steps to take at most.
    on_step : callable
        ``on_step(s, u, alive)`` after step ``s`` (1 … n_steps) with the new state ``u`` and the boolean tensor
        ``alive`` of the members that had not diverged before this step (only theirs are results). It records what
        it needs and returns a boolean tensor of the members that diverge at this step by its rule.

    Returns
    -------
    numpy.ndarray of int64, shape (batch,)
        The step at which each member diverged; −1 where it never did.
    """
    import torch

    u = u0
    n = u.shape[0]
    alive = torch.ones(n, dtype=torch.bool, device=u.device)
    first = np.full(n, -1, dtype=np.int64)
    for s in range(1, int(n_steps) + 1):
        u = step(u)
        bad = alive & on_step(s, u, alive.clone()).to(u.device)
        if bool(bad.any()):
            first[bad.cpu().numpy()] = s
            alive &= ~bad
            if not bool(alive.any()):
                break
        if not bool(alive.all()):
            u = torch.where(alive.reshape(-1, *([1] * (u.ndim - 1))), u, torch.zeros_like(u))
    return first
