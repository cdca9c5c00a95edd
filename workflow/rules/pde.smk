rule solve_pde:
    output:
        "results/data/{dataset}.nc",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset=PDE_DATASETS,
    # data first: every fit can start once its data exist (mesodyn.pipeline.job_priority)
    priority: data_priority
    conda:
        "../envs/simulate.yaml"
    threads: config["data"]["threads"]
    resources:
        mem_mb=data_mem_mb,
        runtime=data_runtime,
    params:
        # only the keys the data depend on (see simulate_chain)
        config=lambda wildcards: {
            "seed": config["seed"],
            "data": {wildcards.dataset: config["data"][wildcards.dataset]},
        },
    script:
        "../scripts/solve_pde.py"
