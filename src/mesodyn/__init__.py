"""mesodyn: learning mesoscopic dynamics in the generalized Onsager hypothesis class.

The package holds the science of the workflow; Snakemake rules only wire files to these functions.
"""

# The one place of the version (pyproject.toml reads it): written here rather than looked up in the installed
# metadata, so that a run that imports mesodyn from the source tree (the workflow under --sdm conda) records the
# same version as an installed one. Releases are tagged v<version> (CHANGELOG.md).
__version__ = "0.2.0"

__all__ = ["__version__"]
