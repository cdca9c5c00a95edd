"""Snakemake adapter: the 5-step table as an HTML page for the report (mesodyn.tables.table_page, by pandas)."""

from mesodyn._io import atomic_write
from mesodyn.pipeline import log_to
from mesodyn.tables import read_table, table_page

with log_to(snakemake.log[0]):
    page = table_page(read_table(snakemake.input.csv))
    atomic_write(snakemake.output[0], page.encode("utf-8"))
