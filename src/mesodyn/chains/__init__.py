"""Microscopic chains: models with the paper's parameters, Numba velocity-Verlet kernels, ensemble driver."""

from mesodyn.chains.initial import SineDraws, draw_sine_modes, sine_field
from mesodyn.chains.models import ChainModel, FENEChain, FPUTChain, chain_from_config
from mesodyn.chains.simulate import ChainEnsemble, initial_state, lab_times, simulate_ensemble

__all__ = [
    "ChainEnsemble",
    "ChainModel",
    "FENEChain",
    "FPUTChain",
    "SineDraws",
    "chain_from_config",
    "draw_sine_modes",
    "initial_state",
    "lab_times",
    "simulate_ensemble",
    "sine_field",
]
