rule solve_pde:
    output:
        "results/data/{dataset}.nc",
    log:
        "logs/data/{dataset}.log",
    wildcard_constraints:
        dataset="kdv|allen_cahn|allen_cahn_2d",
    conda:
        "../../envs/simulate.yaml"
    threads: workflow.cores
    params:
        config=lambda wildcards: {
            "seed": config["seed"],
            "progress": config["progress"],
            "data": {wildcards.dataset: config["data"][wildcards.dataset]},
        },
    script:
        "../scripts/solve_pde.py"
