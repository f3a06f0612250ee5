from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/integrate.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/annotate.smk"
include: "workflow/rules/de.smk"
include: "workflow/rules/clones.smk"
include: "workflow/rules/cohort.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
