# Diagnostics, figures and the report (README, "Figures and report"). One job per data set writes the diagnostics
# files of the run named by figures.run (mesodyn.diagnostics, results/diagnostics/); one job per figure draws it for
# every data set it applies to (mesodyn.plotting; PDF, PNG and a JSON of the numbers it shows, results/figures/);
# one writes the 5-step table as an HTML page. Every figure rule names the one style file as an input, so a change
# of style remakes the figures. `snakemake --report results/report.html` gathers every figure and the table, grouped
# by experiment, each with its caption (workflow/report/) and what we find (read from the figure's numbers).

from mesodyn.config import ConfigError
from mesodyn.figure_plan import (
    FIGURES,
    HYPOTHESES_PAGE,
    HYPOTHESES_TABLE,
    IDENTIFIABILITY_PAGE,
    IDENTIFIABILITY_TABLE,
    LONG_HORIZON_TABLE,
    STYLE,
    TABLE_PAGE,
    dataset_label,
    diagnostic_plan,
    figure_inputs,
    figure_paths,
    figure_plan,
    hypotheses_settings,
    identifiability_entries,
    long_horizon_plan,
    long_horizon_steps,
    report_labels,
)

try:
    FIGURE_PLAN = figure_plan(config)
    DIAGNOSTIC_PLAN = diagnostic_plan(config)
    IDENTIFIABILITY_FILES = identifiability_entries(config)
    HYPOTHESES = hypotheses_settings(config)
except ConfigError as exc:
    sys.stderr.write(f"mesodyn: {exc}\n")
    sys.exit(1)


report: "../report/workflow.rst"


# One job per data set runs all its diagnostics (model and data loaded by one process), one job per figure draws
# it for every data set: a job costs seconds of imports, many small ones would cost more than the work.
for _dataset in sorted({dataset for dataset, _ in DIAGNOSTIC_PLAN}):
    _jobs = [
        entry
        for (dataset, name), entry in sorted(DIAGNOSTIC_PLAN.items())
        if dataset == _dataset
    ]
    _run_dir = _jobs[0]["run_dir"]

    rule:
        name:
            f"diagnose_{_dataset}"
        input:
            data=f"results/data/{_dataset}.nc",
            weights=f"{_run_dir}/weights.pt",
            model=f"{_run_dir}/model.json",
            split=f"{_run_dir}/split.json",
        output:
            [entry["path"] for entry in _jobs],
        log:
            f"logs/diagnostics/{_dataset}.log",
        benchmark:
            f"logs/benchmarks/diagnostics/{_dataset}.tsv"
        conda:
            "../envs/fit.yaml"
        threads: 1
        params:
            jobs=[
                {key: entry[key] for key in ("kind", "n_samples", "options", "path")}
                for entry in _jobs
            ],
        script:
            "../scripts/diagnose.py"


# Long horizons: every fitted run (figures.long_horizon_runs) rolled out far past the data from every held-out
# initial state (mesodyn.diagnostics.long_horizon), one job per run and seed; then one table of them all.
rule long_horizon:
    input:
        data="results/data/{dataset}.nc",
        weights="results/models/{dataset}/{model}/seed{seed}/weights.pt",
        model="results/models/{dataset}/{model}/seed{seed}/model.json",
        split="results/models/{dataset}/{model}/seed{seed}/split.json",
    output:
        "results/diagnostics/{dataset}/{model}/seed{seed}/long_horizon.nc",
    log:
        "logs/diagnostics/{dataset}/{model}/seed{seed}/long_horizon.log",
    benchmark:
        "logs/benchmarks/diagnostics/{dataset}/{model}/seed{seed}/long_horizon.tsv"
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        model="[A-Za-z0-9_.-]+",
        seed="[0-9]+",
    priority: dataset_priority
    conda:
        "../envs/fit.yaml"
    threads: 1
    params:
        n_steps=long_horizon_steps(config),
    script:
        "../scripts/long_horizon.py"


localrules:
    long_horizon_table,


rule long_horizon_table:
    input:
        [entry["path"] for entry in long_horizon_plan(config)],
    output:
        multiext(LONG_HORIZON_TABLE, ".csv", ".md"),
    log:
        "logs/tables/long_horizon.log",
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/long_horizon_table.py"


# What the model learned: every seed of the diagnosed run (figures.run), and of each compared hypothesis class, on each
# data set, in one job (seconds of work per file; mesodyn.diagnostics.identifiability_file); then one table of them
# all, with its report page.
if IDENTIFIABILITY_FILES:

    rule identifiability:
        input:
            data=sorted(
                {f"results/data/{e['dataset']}.nc" for e in IDENTIFIABILITY_FILES}
            ),
            weights=[
                f"{run_dir}/{name}"
                for entry in IDENTIFIABILITY_FILES
                for run_dir in entry["run_dirs"]
                for name in ("weights.pt", "model.json", "split.json")
            ],
        output:
            [entry["path"] for entry in IDENTIFIABILITY_FILES],
        log:
            "logs/diagnostics/identifiability.log",
        benchmark:
            "logs/benchmarks/diagnostics/identifiability.tsv"
        conda:
            "../envs/fit.yaml"
        threads: 1
        params:
            plan=[
                {"data": f"results/data/{entry['dataset']}.nc", **entry}
                for entry in IDENTIFIABILITY_FILES
            ],
        script:
            "../scripts/identifiability.py"


if IDENTIFIABILITY_FILES:

    localrules:
        identifiability_table,

    rule identifiability_table:
        input:
            [entry["path"] for entry in IDENTIFIABILITY_FILES],
        output:
            csv=f"{IDENTIFIABILITY_TABLE}.csv",
            md=f"{IDENTIFIABILITY_TABLE}.md",
            page=report(
                IDENTIFIABILITY_PAGE,
                caption="../report/identifiability_table.rst",
                category="Ours – what the model learned",
                labels={"figure": "identifiability table: every data set"},
            ),
        log:
            "logs/tables/identifiability.log",
        conda:
            "../envs/report.yaml"
        script:
            "../scripts/identifiability_table.py"


# Hypotheses compared (mesodyn.hypotheses): on every data set where at least two runs of hypotheses.runs are fitted,
# which hypothesis class the held-out data prefer; one table with its report page.
if HYPOTHESES["files"]:

    localrules:
        hypotheses_table,

    rule hypotheses_table:
        input:
            metrics=[
                path
                for _, files in sorted(HYPOTHESES["files"].items())
                for path in files
            ],
            # each fit's summary.json (its validation loss) is written by the job that writes weights.pt
            weights=HYPOTHESES["weights"],
        output:
            csv=f"{HYPOTHESES_TABLE}.csv",
            md=f"{HYPOTHESES_TABLE}.md",
            page=report(
                HYPOTHESES_PAGE,
                caption="../report/hypotheses_table.rst",
                category="Ours – hypotheses compared",
                labels={"figure": "hypotheses table: every compared data set"},
            ),
        log:
            "logs/tables/hypotheses.log",
        conda:
            "../envs/report.yaml"
        params:
            step=HYPOTHESES["step"],
            tolerance=HYPOTHESES["tolerance"],
        script:
            "../scripts/hypotheses_table.py"


for _figure, _info in FIGURES.items():
    _datasets = [dataset for figure, dataset in FIGURE_PLAN if figure == _figure]
    if not _datasets:
        continue

    rule:
        name:
            f"figure_{_figure}"
        input:
            files=[
                path
                for dataset in _datasets
                for value in figure_inputs(_figure, dataset, config).values()
                for path in ([value] if isinstance(value, str) else value)
            ],
            style=str(STYLE),
        output:
            [
                report(
                    figure_paths(_figure, dataset)["png"],
                    caption=f"../report/{_figure}.rst",
                    category=_info.category,
                    subcategory=dataset_label(dataset),
                    labels=report_labels(_figure, dataset),
                )
                for dataset in _datasets
            ],
            [figure_paths(_figure, dataset)["pdf"] for dataset in _datasets],
            [figure_paths(_figure, dataset)["json"] for dataset in _datasets],
        log:
            f"logs/figures/{_figure}.log",
        conda:
            "../envs/report.yaml"
        params:
            figure=_figure,
            inputs={
                dataset: figure_inputs(_figure, dataset, config)
                for dataset in _datasets
            },
            epsilon={
                dataset: config["data"].get(dataset, {}).get("epsilon")
                for dataset in _datasets
            },
        script:
            "../scripts/plot.py"

    # a figure takes seconds: drawn where Snakemake runs, not queued on a cluster (the diagnostics stay jobs)
    workflow.localrules(f"figure_{_figure}")


localrules:
    table_page,


rule table_page:
    input:
        md="results/tables/rel_rmse_first5.md",
        csv="results/tables/rel_rmse_first5.csv",
    output:
        report(
            TABLE_PAGE,
            caption="../report/table.rst",
            category="Fig. 2 – the 5-step table",
            labels={"figure": "relative RMSE at steps 1-5, ours beside the paper's"},
        ),
    log:
        "logs/figures/table_rel_rmse_first5.log",
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/table_page.py"
