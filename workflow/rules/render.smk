# Phase: render images from captions + pose conditions (paper section 1.3).


rule render:
    input:
        captions="data/captions/{shard}.parquet",
        poses="data/poses/{shard}.parquet",
        conditions="data/poses/{shard}",
        head_model=HEAD_MODEL,
    output:
        images=directory("data/render/{shard}"),
        table="data/render/{shard}.parquet",
        heads="data/render/{shard}.heads.parquet",
        stats="data/render/{shard}.stats.json",
    log:
        "logs/render/{shard}.log",
    benchmark:
        "logs/benchmark/render/{shard}.tsv"
    params:
        cfg=lambda w: config["render"],
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=lambda w: 1 if config["render"]["backend"] == "sdxl" else 0,
    shell:
        "vggheads render"
        " --params {PARAMS}"
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
