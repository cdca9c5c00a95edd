"""The interface every model keeps, so that training, evaluation and diagnostics never depend on one model.

A model is an ``nn.Module`` built from keyword options (its config, see :mod:`mesodyn.models.configs`) that advances
a batch of fields ``(batch, *shape)`` by one time step. Subclasses set ``config_class`` and implement :meth:`step`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn

from mesodyn.models.configs import ModelConfig
from mesodyn.registry import MODELS, Capabilities

__all__ = ["Model"]


class Model(nn.Module, abc.ABC):
    """A one-step model of mesoscopic dynamics on a periodic grid.

    Attributes
    ----------
    config_class : type of ModelConfig
        The model's config; ``Model(**options)`` validates ``options`` through it.
    trainable : bool
        Whether the model has parameters that :func:`mesodyn.training.fit` optimizes (``False``: the model is
        written without training, e.g. the classical solver).
    """

    config_class: ClassVar[type[ModelConfig]]
    trainable: ClassVar[bool] = True

    def __init__(self, **options: Any):
        super().__init__()
        self.cfg = self.config_class.from_options(options)

    @property
    def config(self) -> dict[str, Any]:
        """The JSON-able config that rebuilds this model (with :func:`mesodyn.models.build_model`)."""
        return self.cfg.to_dict()

    @property
    def name(self) -> str:
        return self.config_class.name

    @property
    def capabilities(self) -> Capabilities:
        """What the model offers beyond :meth:`step` (energy, operators, dissipation, steppers), as its registry
        entry declares it (:data:`mesodyn.registry.MODELS`); a model outside the registry declares nothing."""
        info = MODELS.get(self.name)
        return Capabilities() if info is None else info.capabilities

    @property
    def dt(self) -> float:
        """The default time step (the data's frame spacing)."""
        return self.cfg.dt

    @property
    def shape(self) -> tuple[int, ...]:
        return self.cfg.shape

    def check_input(self, u: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``u`` has shape ``(batch, *shape)``."""
        if tuple(u.shape[1:]) != self.shape or u.dim() != len(self.shape) + 1:
            raise ValueError(f"u must have shape (batch, {', '.join(map(str, self.shape))}), got {tuple(u.shape)}.")

    @abc.abstractmethod
    def step(self, u: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """Advance ``u`` of shape ``(batch, *shape)`` by one step of size ``dt`` (default :attr:`dt`).

        Returns a tensor of the same shape, dtype and device. Gradients flow through it (training); callers
        wrap it in ``torch.no_grad()`` for evaluation unless the model needs autograd inside its step.
        """

    def rollout(self, u0: torch.Tensor, n_steps: int, dt: float | None = None, **step_options: Any) -> torch.Tensor:
        """Autoregressive rollout: ``(batch, n_steps + 1, *shape)``, starting with ``u0``."""
        self.check_input(u0)
        states = [u0]
        u = u0
        for _ in range(int(n_steps)):
            u = self.step(u, dt=dt, **step_options)
            states.append(u)
        return torch.stack(states, dim=1)
