# Phase: captions, photos and pose skeletons (paper sections 1.1-1.2; docs/captions.md).
# captions.source alt-text: sample_captions writes the captions. captions.source blip2 (the paper):
# sample_captions picks the rows, download_images fetches their photos (img2dataset), caption_images
# captions them with BLIP-2 and drops those naming a person. Poses from photos (poses.backend
# ultralytics with poses.ultralytics.images: downloaded) read the downloaded photos too. Rerun
# `vggheads dvc-sync` after switching either key.

BLIP2 = config["captions"]["source"] == "blip2"
POSE_PHOTOS = (
    config["poses"]["backend"] == "ultralytics"
    and config["poses"]["ultralytics"]["images"] == "downloaded"
)
DOWNLOAD = BLIP2 or POSE_PHOTOS
ROWS = (
    "data/captions/{shard}.rows.parquet" if BLIP2 else "data/captions/{shard}.parquet"
)
TINY_BLIP2 = (
    config["captions"]["blip2"]["tiny_dir"]
    if BLIP2 and config["captions"]["blip2"]["model"] == "tiny"
    else []
)


rule sample_captions:
    input:
        sources=caption_sources(config),
    output:
        captions=ROWS,
        stats="data/captions/{shard}.stats.json",
    log:
        "logs/sample_captions/{shard}.log",
    benchmark:
        "logs/benchmark/sample_captions/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 2000 * attempt,
        runtime=lambda w, attempt: 30 * attempt,
    params:
        file=PARAMS,
        cfg=lambda w: config["captions"],
        samples=lambda w: config["dataset"],
    shell:
        "vggheads sample-captions"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --out {output.captions}"
        " --stats {output.stats}"
        " > {log} 2>&1"


if DOWNLOAD:

    rule download_images:
        input:
            rows=ROWS,
        output:
            images="data/images/{shard}.tar",
            table="data/images/{shard}.parquet",
            stats="data/images/{shard}.stats.json",
        log:
            "logs/download_images/{shard}.log",
        benchmark:
            "logs/benchmark/download_images/{shard}.tsv"
        threads: 2
        resources:
            mem_mb=lambda w, attempt: 4000 * attempt,
            runtime=lambda w, attempt: 120 * attempt,
        params:
            file=PARAMS,
            cfg=lambda w: config["captions"]["download"],
        shell:
            "vggheads download-images"
            " --params {params.file}"
            " --shard {wildcards.shard}"
            " --rows {input.rows}"
            " --out {output.images}"
            " --table {output.table}"
            " --stats {output.stats}"
            " --work-dir data/images/.work/{wildcards.shard}"
            " > {log} 2>&1"


if TINY_BLIP2:

    rule build_tiny_blip2:
        output:
            model=directory(TINY_BLIP2),
        log:
            "logs/build_tiny_blip2.log",
        benchmark:
            "logs/benchmark/build_tiny_blip2.tsv"
        threads: 1
        resources:
            mem_mb=lambda w, attempt: 2000 * attempt,
            runtime=lambda w, attempt: 10 * attempt,
        shell:
            "vggheads build-tiny-blip2" " --out {output.model}" " > {log} 2>&1"


if BLIP2:

    rule caption_images:
        input:
            rows=ROWS,
            images="data/images/{shard}.tar",
            model=TINY_BLIP2,
        output:
            captions="data/captions/{shard}.parquet",
            stats="data/captions/{shard}.blip2.stats.json",
        log:
            "logs/caption_images/{shard}.log",
        benchmark:
            "logs/benchmark/caption_images/{shard}.tsv"
        threads: 2
        resources:
            mem_mb=lambda w, attempt: (
                32000 if config["captions"]["blip2"]["model"] != "tiny" else 4000
            )
            * attempt,
            runtime=lambda w, attempt: 120 * attempt,
            gpu=lambda w: 0 if config["captions"]["blip2"]["model"] == "tiny" else 1,
        params:
            file=PARAMS,
            cfg=lambda w: config["captions"],
            model=lambda w: TINY_BLIP2 or config["captions"]["blip2"]["model"],
        shell:
            "vggheads caption-images"
            " --params {params.file}"
            " --shard {wildcards.shard}"
            " --rows {input.rows}"
            " --images {input.images}"
            " --model {params.model}"
            " --out {output.captions}"
            " --stats {output.stats}"
            " > {log} 2>&1"


rule extract_poses:
    input:
        captions="data/captions/{shard}.parquet",
        images="data/images/{shard}.tar" if POSE_PHOTOS else [],
    output:
        poses="data/poses/{shard}.parquet",
        conditions=directory("data/poses/{shard}"),
        stats="data/poses/{shard}.stats.json",
    log:
        "logs/extract_poses/{shard}.log",
    benchmark:
        "logs/benchmark/extract_poses/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 4000 * attempt,
        runtime=lambda w, attempt: 60 * attempt,
        gpu=lambda w: 1 if config["poses"]["backend"] == "ultralytics" else 0,
    params:
        file=PARAMS,
        cfg=lambda w: config["poses"],
        images=lambda w, input: f" --images {input.images}" if POSE_PHOTOS else "",
    shell:
        "vggheads extract-poses"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --captions {input.captions}"
        " --out {output.poses}"
        " --conditions {output.conditions}"
        " --stats {output.stats}"
        "{params.images}"
        " > {log} 2>&1"


FINAL_TARGETS += expand("data/poses/{shard}.parquet", shard=SHARDS)
