"""Res-OnsagerNet: SpecOnsNet's learned Fourier multipliers M and W with a chemical potential that is no gradient.

The baseline of the paper (arXiv 2605.16211), built after the authors' public code (MLDS-NUS/Meso-SpecOnsNet,
their "v4" potential)::

    du/dt = -(M + W) mu,    mu_hat(k) = (a + b |k|^2) u_hat(k) + MLP([Re u_hat, Im u_hat])(k)

* ``M`` and ``W`` are SpecOnsNet's multipliers (:class:`mesodyn.onsager.operators.FourierOperators`), applied
  to ``mu_hat`` on the ``rfftn`` half spectrum.
* ``u_hat`` is the unnormalized ``rfftn`` of the field (SpecOnsNet's :class:`SpectralGrid` convention, the
  authors' ``torch.fft.rfft``), ``|k|^2`` the physical wavenumbers ``2 pi / L * integer`` of the data's grid.
* The MLP maps the real and imaginary parts of the whole half spectrum (flattened, 1-D: ``2 (n/2 + 1)``;
  2-D: ``2 ny (nx/2 + 1)`` reals) to as many reals: ``n_hidden_layers`` ReLU layers of width ``hidden``, with
  a residual skip on every hidden-to-hidden layer (``h <- act(W h + b) + h``), a sine in place of the ReLU on
  the last hidden layer and no output bias. It is not the gradient of any energy: the model has no ``V``.
  Its output is made Hermitian-consistent (:func:`hermitian_part`) before it meets ``irfftn``, which is what
  PyTorch's CPU ``irfftn`` does silently with an inconsistent input; doing it explicitly keeps every device
  on the same function.
* ``a``, ``b``: ``quadratic = "paper"`` reproduces the authors' ``a = a_p^2``, ``b = b_p^2`` with
  ``a_p = b_p = 0`` initially; the gradient of ``a_p^2`` at 0 vanishes, so ``a = b = 0`` through any training.
  ``quadratic = "learned"`` repairs this: ``a = softplus(raw_a)``, ``b = softplus(raw_b)`` starting at
  ``init_a``, ``init_b``.
* Initial M and W: ``init = "paper"`` (the default of this model) draws the authors' ``theta ~ N(0, 0.1^2)``
  per pair of modes (``m = theta^2``) and ``psi ~ N(0, 0.01^2)`` for W; ``init = "ours"`` is SpecOnsNet's
  (``m = min(init_m, init_m_cap / (dt (init_a + init_b |k|^2)))``, ``W = 0``).
* Steppers: ``"euler"`` (the authors'), ``u+ = u - dt (M + W) mu``; ``"sbdf1"``, ``a + b |k|^2`` implicit and
  the MLP explicit, ``u_hat+ = [u_hat - dt s N(u_hat)] / [1 + dt s (a + b |k|^2)]`` with ``s = m + i phi``.

Parameters with the defaults: 1-D, 256 points: MLP 790 016 + M and W 2 x 129 + ``a_p, b_p`` 2 = 790 276.
2-D, 128 x 128: MLP 17 565 184 + M and W 2 x 8 194 + 2 = 17 581 574 (the authors' 2-D code holds one M and
one W parameter per half-spectrum entry, 2 x 8 320, where a pair of modes ``{k, -k}`` needs only one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as tF
from torch import nn

from mesodyn.models.base import Model
from mesodyn.models.configs import ResOnsagerNetConfig
from mesodyn.onsager.energy import inverse_softplus
from mesodyn.onsager.operators import grid_and_operators

__all__ = ["ResOnsagerNet", "ResidualSineMLP", "hermitian_part", "parameter_count"]


class ResidualSineMLP(nn.Module):
    """``in_dim -> hidden (x n_hidden_layers) -> out_dim``: ReLU hidden layers, a sine on the last one, a
    residual skip on every hidden-to-hidden layer, no output bias; PyTorch's default initial weights.

    Parameters
    ----------
    in_dim, out_dim
        Input and output sizes.
    hidden
        Width of the hidden layers.
    n_hidden_layers
        Number of hidden layers (the first maps ``in_dim`` to ``hidden`` and has no skip).
    """

    def __init__(self, *, in_dim: int, hidden: int, n_hidden_layers: int, out_dim: int):
        super().__init__()
        widths = [in_dim] + [hidden] * n_hidden_layers
        self.hidden = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(hidden, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.hidden) - 1
        for i, layer in enumerate(self.hidden):
            z = layer(x)
            z = torch.sin(z) if i == last else torch.relu(z)
            x = z if i == 0 else z + x
        return self.out(x)


def hermitian_part(f_hat: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The half spectrum of the real field that ``irfftn(f_hat, s=shape)`` returns on the CPU.

    Only the self-conjugate columns of the last axis (0, and ``n/2`` for even ``n``) can be inconsistent: there
    a mode ``k`` and its partner ``-k`` are both stored. Each is replaced by the mean of itself and the complex
    conjugate of its partner (in 1-D: its real part).
    """
    nx = shape[-1]
    columns = [0] + ([nx // 2] if nx % 2 == 0 else [])
    parts = list(f_hat.unbind(-1))
    for col in columns:
        g = parts[col]
        if len(shape) == 1:
            parts[col] = torch.complex(g.real, torch.zeros_like(g.real))
        else:
            partner = torch.remainder(-torch.arange(shape[0], device=g.device), shape[0])
            parts[col] = 0.5 * (g + g[..., partner].conj())
    return torch.stack(parts, dim=-1)


class ResOnsagerNet(Model):
    """Res-OnsagerNet ``du/dt = -(M + W) mu`` with ``mu`` from a residual MLP on the spectrum (see the module
    docstring).

    Construct with the keyword arguments of :class:`mesodyn.models.configs.ResOnsagerNetConfig`. Fields are
    tensors of shape ``(batch, *shape)``, 1-D or 2-D.
    """

    config_class = ResOnsagerNetConfig

    def __init__(self, **options: Any):
        super().__init__(**options)
        cfg = self.cfg
        self.grid, self.operators = grid_and_operators(cfg)
        self.half_shape = tuple(self.grid.k2_half.shape)
        self.n_half = int(np.prod(self.half_shape))
        self.mlp = ResidualSineMLP(in_dim=2 * self.n_half, hidden=cfg.hidden, n_hidden_layers=cfg.n_hidden_layers,
                                   out_dim=2 * self.n_half)
        if cfg.quadratic == "paper":
            # The authors' a = a_p^2, b = b_p^2 from a_p = b_p = 0: a stationary point that training never leaves.
            self.a_p = nn.Parameter(torch.zeros(()))
            self.b_p = nn.Parameter(torch.zeros(()))
        else:
            self.raw_a = nn.Parameter(torch.tensor(inverse_softplus(cfg.init_a)))
            self.raw_b = nn.Parameter(torch.tensor(inverse_softplus(cfg.init_b)))
        self._initialize_operators()

    def _initialize_operators(self) -> None:
        """M and W at the start. Random draws come after the MLP's, as in the authors' code (and SpecOnsNet)."""
        cfg, ops = self.cfg, self.operators
        if cfg.init == "paper":
            ops.paper_init_()  # theta ~ N(0, 0.1^2) (m = theta^2), then psi ~ N(0, 0.01^2)
        elif cfg.init_m_cap is not None:
            # SpecOnsNet's explicit-Euler-stable start (see SpecOnsNetConfig.init_m_cap)
            ops.cap_mobility_(dt=cfg.dt, init_m=cfg.init_m, cap=cfg.init_m_cap, a=cfg.init_a, b=cfg.init_b)

    @property
    def stepper(self) -> str:
        """The stepper :meth:`step` takes when given none (the config's)."""
        return self.cfg.stepper

    # -- the chemical potential ------------------------------------------------------------------------------
    @property
    def a(self) -> torch.Tensor:
        return self.a_p**2 if self.cfg.quadratic == "paper" else tF.softplus(self.raw_a)

    @property
    def b(self) -> torch.Tensor:
        return self.b_p**2 if self.cfg.quadratic == "paper" else tF.softplus(self.raw_b)

    def linear_symbol(self) -> torch.Tensor:
        """``a + b |k|^2`` on the half spectrum."""
        return self.a + self.b * self.grid.k2_half

    def residual_hat(self, u_hat: torch.Tensor) -> torch.Tensor:
        """The MLP part of ``mu_hat``, made Hermitian-consistent; shape of ``u_hat``."""
        batch = u_hat.shape[0]
        flat = u_hat.reshape(batch, self.n_half)
        out = self.mlp(torch.cat([flat.real, flat.imag], dim=-1))
        out_hat = torch.complex(out[:, : self.n_half], out[:, self.n_half:]).reshape(batch, *self.half_shape)
        return hermitian_part(out_hat, self.shape)

    def mu_hat(self, u_hat: torch.Tensor) -> torch.Tensor:
        """``mu_hat = (a + b |k|^2) u_hat + MLP([Re u_hat, Im u_hat])`` on the half spectrum."""
        return self.linear_symbol() * u_hat + self.residual_hat(u_hat)

    def mu(self, u: torch.Tensor) -> torch.Tensor:
        """The chemical potential on the grid (not the derivative of any energy)."""
        self.check_input(u)
        return self.grid.irfft(self.mu_hat(self.grid.rfft(u)))

    # -- dynamics ----------------------------------------------------------------------------------------------
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The vector field ``du/dt = -(M + W) mu(u)``."""
        self.check_input(u)
        return -self.grid.irfft(self.operators.apply_hat(self.mu_hat(self.grid.rfft(u))))

    def step(self, u: torch.Tensor, dt: float | None = None, stepper: str | None = None) -> torch.Tensor:
        """One step of size ``dt`` (default :attr:`dt`) with ``stepper`` (``"euler"`` or ``"sbdf1"``; default:
        the configured one)."""
        self.check_input(u)
        dt = self.dt if dt is None else float(dt)
        stepper = stepper or self.stepper
        u_hat = self.grid.rfft(u)
        if stepper == "euler":
            return u - dt * self.grid.irfft(self.operators.apply_hat(self.mu_hat(u_hat)))
        if stepper == "sbdf1":
            m, phi = self.operators.symbols()
            s = torch.complex(m, phi)
            numerator = u_hat - dt * s * self.residual_hat(u_hat)
            return self.grid.irfft(numerator / (1.0 + dt * s * self.linear_symbol()))
        raise ValueError(f"stepper must be euler or sbdf1 for res_onsagernet, got {stepper!r}.")


def parameter_count(*, shape: tuple[int, ...], hidden: int = 512, n_hidden_layers: int = 3,
                    operators: str = "both") -> int:
    """The number of parameters of a Res-OnsagerNet on a grid of ``shape``, in closed form (for tests and docs)."""
    from mesodyn.onsager.operators import mode_pairs

    n_half = math.prod(shape[:-1]) * (shape[-1] // 2 + 1)
    io = 2 * n_half
    mlp = (io * hidden + hidden) + (n_hidden_layers - 1) * (hidden * hidden + hidden) + hidden * io
    n_pairs = mode_pairs(shape)[2]
    symbols = n_pairs * {"both": 2, "M": 1, "W": 1}[operators]
    return mlp + symbols + 2  # + a and b (a_p, b_p or raw_a, raw_b)
