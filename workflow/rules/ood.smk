# Out of distribution (ours, mesodyn.ood, docs/evaluation.md): each generated data set drawn again with initial
# fields unlike the training data's (ood.variants), every fitted run rolled out on them, and one table of them all.


from mesodyn.ood import (
    OOD_TABLE,
    check_ood,
    ood_data_path,
    ood_metric_targets,
)

try:
    check_ood(config)
except ConfigError as exc:
    sys.stderr.write(f"mesodyn: {exc}\n")
    sys.exit(1)

OOD_VARIANTS = list((config.get("ood", {}) or {}).get("variants", {}))


rule ood_data:
    output:
        "results/ood/data/{dataset}/{variant}.nc",
    log:
        "logs/ood/data/{dataset}/{variant}.log",
    benchmark:
        "logs/benchmarks/ood/data/{dataset}/{variant}.tsv"
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        variant="[A-Za-z0-9_.-]+",
    conda:
        "../envs/simulate.yaml"
    threads: 1
    resources:
        # bounded by the data set's own job: a variant holds ood.n_samples of its trajectories
        mem_mb=data_mem_mb,
        runtime=data_runtime,
    script:
        "../scripts/ood_data.py"


rule ood_evaluate:
    input:
        data=lambda wildcards: [
            ood_data_path(wildcards.dataset, variant) for variant in OOD_VARIANTS
        ],
        weights="results/models/{dataset}/{model}/seed{seed}/weights.pt",
        model="results/models/{dataset}/{model}/seed{seed}/model.json",
    output:
        "results/ood/metrics/{dataset}/{model}/seed{seed}.nc",
    log:
        "logs/ood/metrics/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/ood/metrics/{dataset}/{model}/seed{seed}.tsv"
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        model="[A-Za-z0-9_.-]+",
        seed="[0-9]+",
    priority: dataset_priority
    conda:
        "../envs/fit.yaml"
    threads: 1
    resources:
        mem_mb=evaluate_mem_mb,
        runtime=data_runtime,
    params:
        variants=OOD_VARIANTS,
        batch_size=lambda wildcards: 8 if ndim(wildcards.dataset) == 2 else 32,
    script:
        "../scripts/ood_evaluate.py"


localrules:
    ood_table,


rule ood_table:
    input:
        ood=ood_metric_targets(config),
        metrics=[
            f"results/metrics/{dataset}/{run}/seed{seed}.nc"
            for dataset, run, seed in fit_runs(config)
        ],
    output:
        multiext(OOD_TABLE, ".csv", ".md"),
    log:
        "logs/tables/ood.log",
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/ood_table.py"
