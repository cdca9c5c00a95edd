"""mesodyn: learning mesoscopic dynamics in the generalized Onsager hypothesis class.

The package holds the science of the workflow; Snakemake rules only wire files to these functions.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mesodyn")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
