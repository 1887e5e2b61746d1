# Phase: evaluation (paper sections 6-7; docs/evaluation.md). The synthetic validation split always;
# AFLW2000-3D, BIWI, DAD-3DHeads, WIDER FACE and FDDB when their data paths are set in params.yaml.
from vggheads.stages.evaluate import enabled_benchmarks

EVAL_BENCHMARKS = enabled_benchmarks(config)
EVAL_MODEL = "model" in config["evaluate"]["systems"]
EVAL_OFFICIAL = (
    "vggheads-official" in config["evaluate"]["systems"]
)  # the paper's released model (docs/release.md)


rule evaluate:
    input:
        images="data/manifest/images.parquet",
        heads="data/manifest/heads.parquet",
        head_model=HEAD_MODEL,
        weights=["data/model/model.safetensors"] if EVAL_MODEL else [],
        official=(
            [config["evaluate"]["vggheads_official"]["weights"]]
            if EVAL_OFFICIAL
            else []
        ),
    output:
        metrics=expand("metrics/evaluate/{benchmark}.json", benchmark=EVAL_BENCHMARKS),
        plots=report(
            directory("plots/evaluate"),
            patterns=["{name}.png"],
            category="Evaluation",
            subcategory="Curves and histograms",
            caption="../report/evaluation_plots.rst",
        ),
        report=report(
            "reports/evaluate/results.md",
            category="Evaluation",
            subcategory="Results table",
            caption="../report/evaluation.rst",
        ),
    log:
        "logs/evaluate.log",
    benchmark:
        "logs/benchmark/evaluate.tsv"
    threads: 2
    resources:
        mem_mb=lambda w, attempt: 6000 * attempt,
        runtime=lambda w, attempt: 120 * attempt,
    params:
        file=PARAMS,
        cfg=lambda w: config["evaluate"],
        model=" --model data/model" if EVAL_MODEL else "",
    shell:
        "vggheads evaluate"
        " --params {params.file}"
        "{params.model}"
        " --head-model {input.head_model}"
        " --val-images {input.images}"
        " --val-heads {input.heads}"
        " --metrics metrics/evaluate"
        " --plots {output.plots}"
        " --report {output.report}"
        " > {log} 2>&1"


FINAL_TARGETS += expand(
    "metrics/evaluate/{benchmark}.json", benchmark=EVAL_BENCHMARKS
) + ["reports/evaluate/results.md"]
