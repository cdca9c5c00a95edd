# Data rules: chain simulations and the user's own data sets here, PDE solutions in pde.smk. Threads come from the config (data.threads), memory
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
    # data first: every fit can start once its data exist (mesodyn.pipeline.job_priority)
    priority: data_priority
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


# A data set of the user's own (docs/your-data.md): its file is the input, checked against the user contract and
# written as the fields file every later rule reads (mesodyn.pipeline.user_data_files); a bad file writes nothing.
if USER_DATASET_NAMES:

    rule user_data:
        input:
            lambda wildcards: config["data"][wildcards.dataset]["path"],
        output:
            fields="results/data/{dataset}.nc",
        log:
            "logs/data/{dataset}.log",
        benchmark:
            "logs/benchmarks/data/{dataset}.tsv"
        wildcard_constraints:
            dataset=USER_DATASET_NAMES,
        priority: data_priority
        conda:
            "../envs/fit.yaml"
        threads: 1
        resources:
            mem_mb=data_mem_mb,
            runtime=data_runtime,
        params:
            # the entry alone: a change of label or declared pde is a change of the fields file's attributes
            entry=lambda wildcards: config["data"][wildcards.dataset],
        script:
            "../scripts/user_data.py"
