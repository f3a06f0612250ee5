rule merge_normalise:
    input:
        kept=qc_outputs("cells_kept.h5ad"),
    output:
        temp("results/merged/adata.h5ad"),
    log:
        "logs/merge_normalise/merge_normalise.log",
    benchmark:
        "benchmarks/merge_normalise/merge_normalise.tsv"
    conda:
        "../../envs/clonetrack.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb(factor=12, floor_mb=2000),
        runtime=60,
    params:
        samples=SAMPLES,
        preprocess=config["preprocess"],
        batch_key=config["integration"]["batch_key"],
        seed=config["seed"],
    script:
        "../scripts/merge_normalise.py"


rule integrate:
    input:
        "results/merged/adata.h5ad",
    output:
        "results/integrate/method~{method}/adata.h5ad",
    log:
        "logs/integrate/method~{method}.log",
    benchmark:
        "benchmarks/integrate/method~{method}.tsv"
    conda:
        "../../envs/clonetrack.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb(factor=3, floor_mb=2000),
        runtime=lambda wildcards: 240 if wildcards.method == "scvi" else 60,
        gpu=lambda wildcards: 1 if wildcards.method == "scvi" else 0,
    params:
        integration=config["integration"],
        seed=config["seed"],
    script:
        "../scripts/integrate.py"
