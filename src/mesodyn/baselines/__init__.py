"""Baselines and ablations compared with SpecOnsNet (all behind the :class:`mesodyn.models.base.Model` interface)."""
