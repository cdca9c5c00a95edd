"""OnsagerNet on the grid: the ``n`` values of a 1-D field as one state vector ``x`` of an ODE.

The baseline of the paper (arXiv 2605.16211) built after the authors' public code (MLDS-NUS/Meso-SpecOnsNet,
itself after OnsagerNet, Yu et al. 2021)::

    dx/dt = -(M(x) + W(x)) grad V(x)

* ``V(x) = alpha/2 |x|^2 + MLP_V(x)`` with ``alpha = exp(log_alpha)`` and ``MLP_V`` a tanh MLP
  ``n -> hidden x n_hidden_layers -> 1`` without output bias; ``grad V`` is the Euclidean gradient in
  ``R^n`` (no grid measure), ``alpha x`` in closed form plus ``grad MLP_V`` by autograd.
* ``M(x) = beta I + B(x) B(x)^T`` with ``B(x)`` of shape ``(n, rank_m)`` from a tanh MLP
  ``n -> hidden x operator_hidden_layers -> n rank_m``: symmetric positive semi-definite for every ``x``.
* ``W(x) = B'(x) C^T - C B'(x)^T`` with ``B'(x)`` of shape ``(n, rank_w)`` from a second such MLP and a learned
  ``C`` of shape ``(n, rank_w)`` (initially ``N(0, 0.01^2)``): antisymmetric for every ``x``.
* One step is explicit Euler, ``x+ = x - dt (M + W) grad V``.

With the defaults on 256 points: ``MLP_V`` 197 632, ``log_alpha`` 1, the factor MLP of M 657 920, that of W
394 752 and ``C`` 1 024, i.e. 1 251 329 parameters (the authors' layout: three hidden layers for V, two for the
factor MLPs; three for all would give 1 382 913).

``grad V`` needs autograd inside the step, also in evaluation: the step turns autograd on locally, and keeps
the graph of ``grad V`` (``create_graph``) only when the caller records gradients, so that under
``torch.no_grad()`` it returns a plain tensor. Unlike the authors' code, the gradient of ``grad V`` with
respect to an input that itself requires grad is kept (they detach the state there); the training loss of
:mod:`mesodyn.training` detaches the state between steps anyway, so training is the same.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mesodyn.models.base import Model
from mesodyn.models.configs import OnsagerNetConfig

__all__ = ["OnsagerNet", "tanh_mlp"]


def tanh_mlp(*, in_dim: int, hidden: int, n_hidden_layers: int, out_dim: int, out_bias: bool = True) -> nn.Sequential:
    """``in_dim -> hidden (x n_hidden_layers, tanh) -> out_dim`` with PyTorch's default initial weights."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden), nn.Tanh()]
        width = hidden
    layers.append(nn.Linear(width, out_dim, bias=out_bias))
    return nn.Sequential(*layers)


class OnsagerNet(Model):
    """OnsagerNet ``dx/dt = -(M(x) + W(x)) grad V(x)`` on the grid values of a 1-D field (see the module docstring).

    Construct with the keyword arguments of :class:`mesodyn.models.configs.OnsagerNetConfig`. Fields are tensors
    of shape ``(batch, n)``.
    """

    config_class = OnsagerNetConfig

    def __init__(self, **options: Any):
        super().__init__(**options)
        cfg = self.cfg
        n = cfg.shape[0]
        self.n = n
        self.mlp_v = tanh_mlp(in_dim=n, hidden=cfg.hidden, n_hidden_layers=cfg.n_hidden_layers, out_dim=1,
                              out_bias=False)  # a constant in V never enters the dynamics
        self.log_alpha = nn.Parameter(torch.tensor(float(cfg.alpha0)).log())
        self.mlp_m = tanh_mlp(in_dim=n, hidden=cfg.hidden, n_hidden_layers=cfg.operator_hidden_layers,
                              out_dim=n * cfg.rank_m)
        self.mlp_w = tanh_mlp(in_dim=n, hidden=cfg.hidden, n_hidden_layers=cfg.operator_hidden_layers,
                              out_dim=n * cfg.rank_w)
        self.c = nn.Parameter(0.01 * torch.randn(n, cfg.rank_w))

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    @property
    def beta(self) -> float:
        return float(self.cfg.beta)

    # -- the three ingredients -------------------------------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``V(x) = alpha/2 |x|^2 + MLP_V(x)``, shape ``(batch,)``."""
        self.check_input(x)
        return 0.5 * self.alpha * (x * x).sum(dim=-1) + self.mlp_v(x).squeeze(-1)

    def grad_energy(self, x: torch.Tensor) -> torch.Tensor:
        """``grad V(x)`` (Euclidean), shape ``(batch, n)``; works with gradients on or off.

        The graph of the gradient is kept only when the caller records gradients and something (a parameter
        or ``x``) requires them: that is training, or a test differentiating through the step.
        """
        self.check_input(x)
        keep_graph = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        with torch.inference_mode(False), torch.enable_grad():
            if x.is_inference():  # an inference tensor cannot enter autograd: copy it out of inference mode
                x = x.clone()
            # A state that is part of the caller's graph is differentiated as it is (gradients flow through
            # grad V); otherwise a leaf copy takes the derivative.
            x_in = x if (keep_graph and x.requires_grad) else x.detach().requires_grad_(True)
            (grad_mlp,) = torch.autograd.grad(self.mlp_v(x_in).sum(), x_in, create_graph=keep_graph)
        return self.alpha * x + grad_mlp

    def factor_m(self, x: torch.Tensor) -> torch.Tensor:
        """``B(x)`` of ``M = beta I + B B^T``, shape ``(batch, n, rank_m)``."""
        return self.mlp_m(x).reshape(x.shape[0], self.n, self.cfg.rank_m)

    def factor_w(self, x: torch.Tensor) -> torch.Tensor:
        """``B'(x)`` of ``W = B' C^T - C B'^T``, shape ``(batch, n, rank_w)``."""
        return self.mlp_w(x).reshape(x.shape[0], self.n, self.cfg.rank_w)

    def apply_operators(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``(M(x) + W(x)) v`` through the low-rank factors, never forming an ``n x n`` matrix."""
        b_m = self.factor_m(x)
        b_w = self.factor_w(x)
        c = self.c.to(v.dtype)
        mv = self.beta * v + torch.einsum("bir,br->bi", b_m, torch.einsum("bir,bi->br", b_m, v))
        wv = torch.einsum("bir,br->bi", b_w, v @ c) - torch.einsum("bir,bi->br", b_w, v) @ c.T
        return mv + wv

    def matrices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M(x), W(x))`` assembled as ``(batch, n, n)`` matrices (for tests and diagnostics)."""
        self.check_input(x)
        b_m, b_w = self.factor_m(x), self.factor_w(x)
        eye = torch.eye(self.n, dtype=x.dtype, device=x.device)
        m = self.beta * eye + b_m @ b_m.transpose(-1, -2)
        cw = self.c.to(x.dtype).expand(x.shape[0], -1, -1)
        w = b_w @ cw.transpose(-1, -2) - cw @ b_w.transpose(-1, -2)
        return m, w

    # -- dynamics ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The vector field ``dx/dt = -(M(x) + W(x)) grad V(x)``."""
        return -self.apply_operators(x, self.grad_energy(x))

    def step(self, u: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """One explicit Euler step ``u - dt (M + W) grad V`` of size ``dt`` (default :attr:`dt`)."""
        self.check_input(u)
        dt = self.dt if dt is None else float(dt)
        return u - dt * self.apply_operators(u, self.grad_energy(u))
