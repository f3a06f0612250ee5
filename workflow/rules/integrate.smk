rule merge_normalise:
    input:
        kept=qc_outputs("cells_kept.h5ad"),
    output:
        adata="results/merged/adata.h5ad",
        # raw counts of all samples, concatenated on disk; the final object's layers["counts"]
        counts="results/merged/counts.h5ad",
    params:
        samples=SAMPLES,
        preprocess=config["preprocess"],
        batch_key=config["integration"]["batch_key"],
        seed=config["seed"],
    log:
        "logs/merge_normalise/merge_normalise.log",
    benchmark:
        "benchmarks/merge_normalise/merge_normalise.tsv"
    threads: 2
    resources:
        # block-wise: 4.9 GB for 1,000,000 cells (11.9 GB of counts on disk)
        mem_mb=mem_mb(factor=0.6, floor_mb=3000),
        runtime=60,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/merge_normalise.py"


rule integrate:
    input:
        merged="results/merged/adata.h5ad",
        counts="results/merged/counts.h5ad",
    output:
        "results/integrate/method~{method}/cells.h5ad",
    params:
        integration=config["integration"],
        seed=config["seed"],
    log:
        "logs/integrate/method~{method}.log",
    benchmark:
        "benchmarks/integrate/method~{method}.tsv"
    threads: 2
    resources:
        # Harmony reads the PCs only: 2.1 GB for 895,256 cells (22 GB of input on disk).
        # scVI reads the variable genes' counts and is not measured at scale: kept generous.
        mem_mb=mem_mb(
            factor=lambda wildcards: 1 if wildcards.method == "scvi" else 0.15, floor_mb=2000
        ),
        runtime=lambda wildcards: 240 if wildcards.method == "scvi" else 60,
        gpu=lambda wildcards: 1 if wildcards.method == "scvi" else 0,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/integrate.py"
