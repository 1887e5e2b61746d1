# Phase: render images from captions + pose conditions (paper section 1.3).
# Backends (params render.backend): procedural | tiny-sdxl | sdxl. Real SDXL weights come from a
# local directory or the Hugging Face cache (docs/sdxl.md), not from a rule; the tiny random-weight
# SDXL is built here, once, when render.backend is tiny-sdxl (then rerun `vggheads dvc-sync`).
# With render.sdxl.conditioning head-mesh / pose+head-mesh the SDXL backends paint around the
# procedural scene built from the head model (an input either way) and write its exact truth as the
# heads table; the filter rule then measures each image's agreement with its scene.

TINY_SDXL = (
    config["render"]["sdxl"]["tiny"]["model_dir"]
    if config["render"]["backend"] == "tiny-sdxl"
    else []
)

if config["render"]["backend"] == "tiny-sdxl":

    rule build_tiny_sdxl:
        output:
            model=directory(TINY_SDXL),
        log:
            "logs/build_tiny_sdxl.log",
        benchmark:
            "logs/benchmark/build_tiny_sdxl.tsv"
        threads: 1
        resources:
            mem_mb=lambda w, attempt: 2000 * attempt,
            runtime=lambda w, attempt: 10 * attempt,
        shell:
            "vggheads build-tiny-sdxl" " --out {output.model}" " > {log} 2>&1"


rule render:
    input:
        captions="data/captions/{shard}.parquet",
        poses="data/poses/{shard}.parquet",
        conditions="data/poses/{shard}",
        head_model=HEAD_MODEL,
        models=TINY_SDXL,
    output:
        images=directory("data/render/{shard}"),
        table="data/render/{shard}.parquet",
        heads="data/render/{shard}.heads.parquet",
        stats="data/render/{shard}.stats.json",
    log:
        "logs/render/{shard}.log",
    benchmark:
        "logs/benchmark/render/{shard}.tsv"
    threads: 2
    resources:
        mem_mb=lambda w, attempt: (
            32000 if config["render"]["backend"] == "sdxl" else 8000
        )
        * attempt,
        runtime=lambda w, attempt: 240 * attempt,
        gpu=lambda w: 1 if config["render"]["backend"] == "sdxl" else 0,
    params:
        file=PARAMS,
        cfg=lambda w: config["render"],
    shell:
        "vggheads render"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --captions {input.captions}"
        " --poses {input.poses}"
        " --conditions {input.conditions}"
        " --head-model {input.head_model}"
        " --out-images {output.images}"
        " --out-table {output.table}"
        " --out-heads {output.heads}"
        " --out-stats {output.stats}"
        " --work-dir data/render/.work/{wildcards.shard}"
        " > {log} 2>&1"


FINAL_TARGETS += expand("data/render/{shard}.parquet", shard=SHARDS)


rule draw_samples:
    input:
        images="data/render/{shard}",
        heads="data/render/{shard}.heads.parquet",
        head_model=HEAD_MODEL,
    output:
        drawn=report(
            directory("plots/samples/{shard}"),
            patterns=["{sample}.png"],
            category="Samples",
            subcategory="shard {shard}",
            caption="../report/samples.rst",
        ),
    log:
        "logs/draw_samples/{shard}.log",
    benchmark:
        "logs/benchmark/draw_samples/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 2000 * attempt,
        runtime=lambda w, attempt: 10 * attempt,
    params:
        limit=4,
    shell:
        "vggheads draw-samples"
        " --images {input.images}"
        " --heads {input.heads}"
        " --head-model {input.head_model}"
        " --limit {params.limit}"
        " --out plots/samples"
        " > {log} 2>&1"


FINAL_TARGETS += expand("plots/samples/{shard}", shard=SHARDS)
