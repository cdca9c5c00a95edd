"""The Fourier neural operator baseline: ``u+ = u + dt FNO(u)`` with the ``neuraloperator`` library's ``FNO``.

The baseline of arXiv 2605.16211 (and of the authors' public code, MLDS-NUS/Meso-SpecOnsNet), built with the
library the authors used (``neuraloperator`` 2.0.0): one input and one output channel, ``n_modes`` Fourier modes
per axis, ``hidden_channels`` channels, ``n_layers`` Fourier layers, and every other argument at the library's
default. The library is imported only when a model is built, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

import torch

from mesodyn.models.base import Model
from mesodyn.models.configs import FNOConfig

__all__ = ["FNOConfig", "FNOStep"]

# The complex dtype that matches a real one (the spectral weights follow the precision of the real weights).
_COMPLEX_OF = {torch.float16: torch.complex32, torch.float32: torch.complex64, torch.float64: torch.complex128}


def _drop_library_metadata(module, state_dict, prefix, local_metadata) -> None:
    """State-dict post-hook: remove the ``"_metadata"`` entry the library adds.

    ``neuraloperator`` models put their constructor arguments (including a Python function and a class) into
    their ``state_dict`` under the bare key ``"_metadata"``, also when they are a submodule. That entry is no
    tensor: it would break ``torch.load(..., weights_only=True)`` and the loading of our plain state dicts.
    The config in ``model.json`` already holds everything needed to rebuild the model.
    """
    entry = state_dict.get("_metadata")
    if entry is not None and not isinstance(entry, torch.Tensor):
        del state_dict["_metadata"]


class FNOStep(Model):
    """One explicit step ``u+ = u + dt FNO(u)`` with the ``neuraloperator`` library's ``FNO``.

    Construct with the keyword arguments of :class:`mesodyn.models.configs.FNOConfig`. Fields are tensors of
    shape ``(batch, *shape)``; the network sees them as one channel, ``(batch, 1, *shape)``.

    Notes
    -----
    What the library's defaults (kept, as the authors kept them) mean here:

    - ``n_modes`` is the library's count of Fourier modes per axis: along the last axis (a real FFT) it keeps
      the wavenumbers ``0 .. n_modes // 2``, along the first axis of a 2-D field the ``n_modes`` wavenumbers
      ``-(n_modes // 2) .. (n_modes - 1) // 2``. On a grid with fewer modes the library keeps what there is.
    - Positional embedding ``"grid"``: the network's input gets one extra channel per axis holding the grid
      coordinate ``j / n`` (``j = 0 .. n - 1``), i.e. the library's default domain ``[0, 1)`` per axis,
      whatever the physical ``length``. The network is therefore not translation-equivariant.
    - Lifting and projection: two-layer pointwise MLPs of width ``2 * hidden_channels``; GELU; linear skips
      around the spectral convolutions and soft-gated skips around the channel MLPs; no normalization, no
      padding, dense (unfactorized) complex weights.

    The library keeps the Fourier coefficients of its spectral convolutions in single precision whatever the
    input's precision, so a model cast to float64 (:func:`mesodyn.models.cast_module`) returns float64 fields
    that are only single-precision accurate in those layers.
    """

    config_class = FNOConfig

    def __init__(self, **options: Any):
        super().__init__(**options)
        # Imported here: neuraloperator pulls in wandb and tensorly (seconds), which a config check or a
        # registry look-up never needs.
        from neuralop.models import FNO

        cfg = self.cfg
        self.fno = FNO(n_modes=(cfg.n_modes,) * cfg.ndim, in_channels=1, out_channels=1,
                       hidden_channels=cfg.hidden_channels, n_layers=cfg.n_layers)
        self.register_state_dict_post_hook(_drop_library_metadata)

    def to(self, *args: Any, **kwargs: Any) -> FNOStep:
        """``Module.to``, except that a real floating ``dtype`` leaves the complex spectral weights complex.

        ``Module.to(torch.float32)`` would cast the library's complex weights to a real dtype and so drop their
        imaginary parts; here real tensors take ``dtype`` and complex ones the matching complex precision (as
        :func:`mesodyn.models.cast_module` does).
        """
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is None or not dtype.is_floating_point:
            return super().to(*args, **kwargs)

        def convert(t: torch.Tensor) -> torch.Tensor:
            target = dtype if t.is_floating_point() else None  # complex: matched in _apply below
            if memory_format is not None and t.dim() in (4, 5):
                return t.to(device, target, non_blocking, memory_format=memory_format)
            return t.to(device, target, non_blocking)

        return self._apply(convert)

    def _apply(self, fn, *args, **kwargs):
        module = super()._apply(fn, *args, **kwargs)
        # Keep the complex weights at the precision of the real ones, whatever cast was applied: ``double()``
        # and ``float()`` touch only real tensors, and the library's spectral contraction needs both operands
        # of one precision.
        real = next((p.dtype for p in self.parameters() if p.is_floating_point()), None)
        wanted = _COMPLEX_OF.get(real)
        if wanted is not None and any(p.is_complex() and p.dtype != wanted for p in self.parameters()):
            super()._apply(lambda t: t.to(wanted) if t.is_complex() else t)
        # The library caches its positional grid by resolution only, in the dtype and on the device of the
        # first call: drop it whenever the model moves or changes precision so that it is rebuilt to match.
        embedding = getattr(self.fno, "positional_embedding", None)
        if embedding is not None and hasattr(embedding, "_grid"):
            embedding._grid = None
            embedding._res = None
        return module

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The learned vector field ``FNO(u)``, same shape as ``u``."""
        self.check_input(u)
        return self.fno(u[:, None])[:, 0]

    def step(self, u: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """One explicit step ``u + dt FNO(u)`` of size ``dt`` (default :attr:`dt`)."""
        dt = self.dt if dt is None else float(dt)
        return u + dt * self(u)
