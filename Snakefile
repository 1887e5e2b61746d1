# vggheads: the whole pipeline. Run with `snakemake --cores N` (or `dvc repro`, or on SLURM with
# `snakemake --profile workflow/profiles/slurm`). All logic lives in the vggheads package.
from snakemake.utils import min_version
from vggheads.workflow import checked_configfile

min_version("9.0")


configfile: checked_configfile("params.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/captions.smk"
include: "workflow/rules/headmodel.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/release.smk"  # dataset.source: release (docs/release.md)
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        FINAL_TARGETS,
