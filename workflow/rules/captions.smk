# Phase: captions and pose skeletons (paper sections 1.1-1.2).


rule sample_captions:
    input:
        sources=caption_sources(config),
    output:
        captions="data/captions/{shard}.parquet",
        stats="data/captions/{shard}.stats.json",
    log:
        "logs/sample_captions/{shard}.log",
    benchmark:
        "logs/benchmark/sample_captions/{shard}.tsv"
    params:
        file=PARAMS,
        cfg=lambda w: config["captions"],
        samples=lambda w: config["dataset"],
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 2000 * attempt,
        runtime=lambda w, attempt: 30 * attempt,
    shell:
        "vggheads sample-captions"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --out {output.captions}"
        " --stats {output.stats}"
        " > {log} 2>&1"


rule extract_poses:
    input:
        captions="data/captions/{shard}.parquet",
    output:
        poses="data/poses/{shard}.parquet",
        conditions=directory("data/poses/{shard}"),
        stats="data/poses/{shard}.stats.json",
    log:
        "logs/extract_poses/{shard}.log",
    benchmark:
        "logs/benchmark/extract_poses/{shard}.tsv"
    params:
        file=PARAMS,
        cfg=lambda w: config["poses"],
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 4000 * attempt,
        runtime=lambda w, attempt: 60 * attempt,
        gpu=lambda w: 1 if config["poses"]["backend"] == "ultralytics" else 0,
    shell:
        "vggheads extract-poses"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --captions {input.captions}"
        " --out {output.poses}"
        " --conditions {output.conditions}"
        " --stats {output.stats}"
        " > {log} 2>&1"


FINAL_TARGETS += expand("data/poses/{shard}.parquet", shard=SHARDS)
