# Phase: the dataset as parquet manifests, its card and the gathered label quality (paper 1.8;
# docs/dataset.md). `vggheads export` writes the paper's release layout from these files.


rule build_manifest:
    input:
        tables=expand("data/render/{shard}.parquet", shard=SHARDS),
        images=expand("data/render/{shard}", shard=SHARDS),
        labels=expand("data/labels/{shard}.parquet", shard=SHARDS),
        label_stats=expand("data/labels/{shard}.stats.json", shard=SHARDS),
        filters=expand("data/filter/{shard}.parquet", shard=SHARDS),
        agreement=expand("data/filter/{shard}.agreement.parquet", shard=SHARDS),
    output:
        images="data/manifest/images.parquet",
        heads="data/manifest/heads.parquet",
        card="metrics/dataset_card.json",
        quality="metrics/label_quality.json",
        plots=report(
            directory("plots/dataset"),
            patterns=["{name}.png"],
            category="Dataset card",
            caption="../report/dataset_card.rst",
        ),
    log:
        "logs/build_manifest.log",
    benchmark:
        "logs/benchmark/build_manifest.tsv"
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 4000 * attempt,
        runtime=lambda w, attempt: 30 * attempt,
    params:
        file=PARAMS,
        cfg=lambda w: config["manifest"],
        shards=SHARDS,
    shell:
        "vggheads build-manifest"
        " --params {params.file}"
        " --shards {params.shards}"
        " --render-tables {input.tables}"
        " --labels {input.labels}"
        " --filters {input.filters}"
        " --label-stats {input.label_stats}"
        " --agreement {input.agreement}"
        " --out-dir data/manifest"
        " --card {output.card}"
        " --quality {output.quality}"
        " --plots {output.plots}"
        " > {log} 2>&1"


FINAL_TARGETS += [
    "data/manifest/images.parquet",
    "data/manifest/heads.parquet",
    "metrics/dataset_card.json",
    "metrics/label_quality.json",
    "metrics/detector.json",
]
