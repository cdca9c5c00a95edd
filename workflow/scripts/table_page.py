"""Snakemake adapter: the 5-step table as an HTML page for the report (mesodyn.plotting.table_html)."""

from pathlib import Path

from mesodyn._io import atomic_write
from mesodyn.pipeline import log_to
from mesodyn.plotting import table_html

with log_to(snakemake.log[0]):
    page = table_html(Path(snakemake.input.md).read_text(encoding="utf-8"))
    atomic_write(snakemake.output[0], page.encode("utf-8"))
