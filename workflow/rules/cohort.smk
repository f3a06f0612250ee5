rule cohort_answer:
    input:
        unpack(cohort_inputs),
        adata="results/final/adata.h5ad",
        frequencies="results/tables/clones/frequencies.tsv",
        classes="results/tables/clones/classes.tsv",
        signatures=list(config["clones"]["resistance"]["signatures"].values()),
    output:
        patients=report(
            "results/plots/answer/patients.png",
            caption="../report/answer_patients.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"figure": "each patient: malignant fraction and clones"},
        ),
        answers=report(
            "results/tables/cohort/answers.tsv",
            caption="../report/answer_patients.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"table": "each patient in words"},
        ),
        tests=report(
            "results/tables/cohort/tests.tsv",
            caption="../report/answer_biomarkers.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"table": "biomarkers by response"},
        ),
        biomarkers=report(
            "results/plots/answer/biomarkers.png",
            caption="../report/answer_biomarkers.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"figure": "biomarkers by response"},
        ),
        composition=report(
            "results/tables/cohort/composition.tsv",
            caption="../report/answer_biomarkers.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"table": "composition (scCODA)"},
        ),
        correlations=report(
            "results/tables/cohort/correlations.tsv",
            caption="../report/answer_correlations.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"table": "measurements vs features"},
        ),
        correlation_plot=report(
            "results/plots/answer/correlations.png",
            caption="../report/answer_correlations.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"figure": "measurements vs features"},
        ),
        features="results/tables/cohort/features.tsv",
        notes=report(
            "results/tables/cohort/notes.tsv",
            caption="../report/answer_biomarkers.rst",
            category="0. Answer",
            subcategory="Cohort",
            labels={"table": "what the cohort analysis left out"},
        ),
    params:
        cohort=config["cohort"],
        patient_notes=PATIENT_NOTES,
        measurement_notes=MEASUREMENT_NOTES,
        patients=PATIENTS,
        sheet=SAMPLES[["patient_id"]],
        stem_cell_types=config["clones"]["resistance"]["stem_cell_types"],
        signatures=config["clones"]["resistance"]["signatures"],
        min_cells=config["clones"]["resistance"]["min_cells"],
        seed=config["seed"],
    log:
        "logs/cohort_answer/cohort_answer.log",
    benchmark:
        "benchmarks/cohort_answer/cohort_answer.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(factor=0.2, floor_mb=3000),
        runtime=60,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/cohort_answer.py"


rule answer_patient:
    input:
        answers="results/tables/cohort/answers.tsv",
        frequencies="results/tables/clones/frequencies.tsv",
        classes="results/tables/clones/classes.tsv",
    output:
        report(
            "results/plots/answer/patient~{patient}.png",
            caption="../report/answer_patients.rst",
            category="0. Answer",
            subcategory="{patient}",
            labels={"patient": "{patient}", "figure": "malignant fraction and clones"},
        ),
    log:
        "logs/answer_patient/patient~{patient}.log",
    benchmark:
        "benchmarks/answer_patient/patient~{patient}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/clonetrack.yaml"
    script:
        "../scripts/answer_patient.py"
