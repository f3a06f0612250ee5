# Neighbours, UMAP, Leiden and markers share one job: numba compiles pynndescent afresh in each
# process (about a minute), so splitting them would pay that cost several times.
rule cluster_cells:
    input:
        merged="results/merged/adata.h5ad",
        cells=f"results/integrate/method~{METHOD}/cells.h5ad",
    output:
        cells="results/cluster/cells.h5ad",
        resolutions=report(
            "results/tables/leiden_resolutions.tsv",
            caption="../report/cluster_resolutions.rst",
            category="3. Clusters and cell types",
            labels={"table": "Leiden resolutions"},
        ),
        markers=report(
            "results/tables/markers.tsv",
            caption="../report/markers.rst",
            category="3. Clusters and cell types",
            labels={"table": "cluster markers"},
        ),
    params:
        clustering=config["clustering"],
        seed=config["seed"],
    log:
        "logs/cluster_cells/cluster_cells.log",
    benchmark:
        "benchmarks/cluster_cells/cluster_cells.tsv"
    threads: 2
    resources:
        # 895,256 cells, 11.4 GB of input: peak 4.8 GB with UMAP's PCA start (converting the
        # graph for Leiden), 9.4 GB with the spectral start, which grows as cells^1.5
        mem_mb=mem_mb(
            factor=0.5 if config["clustering"]["umap_init"] == "pca" else 1.5, floor_mb=2000
        ),
        runtime=120,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/cluster_cells.py"
