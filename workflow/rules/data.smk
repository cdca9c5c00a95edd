# Data rules: chain simulations here, PDE solutions in pde.smk. Threads come from the config (data.threads), memory
# and run time from resources.smk (functions shared with the fit and evaluate rules).


include: "resources.smk"


rule simulate_chain:
    output:
        fields="results/data/{dataset}.nc",
        micro="results/micro/{dataset}.nc",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "logs/benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset=CHAIN_DATASETS,
    # data first: every fit can start once its data exist, so the long 2-D fits do not end up last
    priority: 10
    conda:
        "../envs/simulate.yaml"
    threads: config["data"]["threads"]
    resources:
        mem_mb=data_mem_mb,
        runtime=data_runtime,
    params:
        # only the keys the data depend on: a key like `progress` here would rerun every simulation when toggled
        config=lambda wildcards: {
            "seed": config["seed"],
            "coarse": config["coarse"],
            "micro": config["micro"],
            "data": {wildcards.dataset: config["data"][wildcards.dataset]},
        },
    script:
        "../scripts/simulate_chain.py"
