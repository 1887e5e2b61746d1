# Phase: head detection, 3DMM pseudo-labels and filtering (paper sections 1.5-1.7; docs/dataset.md).
# The detector trains once on a labelled subset, then every shard is detected, labelled and filtered.


rule train_head_detector:
    input:
        tables=expand("data/render/{shard}.parquet", shard=SHARDS),
        heads=expand("data/render/{shard}.heads.parquet", shard=SHARDS),
        images=expand("data/render/{shard}", shard=SHARDS),
        head_model=HEAD_MODEL,
    output:
        weights="data/detector/head_detector.pt",
        metrics="metrics/detector.json",
    log:
        "logs/train_head_detector.log",
    benchmark:
        "logs/benchmark/train_head_detector.tsv"
    threads: 2
    resources:
        mem_mb=lambda w, attempt: 6000 * attempt,
        runtime=lambda w, attempt: 60 * attempt,
        gpu=lambda w: 0 if config["detector"]["device"] == "cpu" else 1,
    params:
        file=PARAMS,
        cfg=lambda w: config["detector"],
        poses=lambda w: config["poses"],
        procedural=lambda w: config["render"].get("procedural"),
    shell:
        "vggheads train-head-detector"
        " --params {params.file}"
        " --render-tables {input.tables}"
        " --head-model {input.head_model}"
        " --out {output.weights}"
        " --metrics {output.metrics}"
        " --work-dir data/detector/.work"
        " > {log} 2>&1"


rule detect_heads:
    input:
        table="data/render/{shard}.parquet",
        images="data/render/{shard}",
        truth="data/render/{shard}.heads.parquet",
        weights="data/detector/head_detector.pt",
    output:
        detections="data/detections/{shard}.parquet",
        stats="data/detections/{shard}.stats.json",
    log:
        "logs/detect_heads/{shard}.log",
    benchmark:
        "logs/benchmark/detect_heads/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 3000 * attempt,
        runtime=lambda w, attempt: 30 * attempt,
        gpu=lambda w: 0 if config["detector"]["device"] == "cpu" else 1,
    params:
        file=PARAMS,
        cfg=lambda w: config["detector"],
    shell:
        "vggheads detect-heads"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --render-table {input.table}"
        " --images {input.images}"
        " --weights {input.weights}"
        " --truth {input.truth}"
        " --out {output.detections}"
        " --stats {output.stats}"
        " > {log} 2>&1"


rule label_3dmm:
    input:
        table="data/render/{shard}.parquet",
        images="data/render/{shard}",
        truth="data/render/{shard}.heads.parquet",
        detections="data/detections/{shard}.parquet",
        head_model=HEAD_MODEL,
    output:
        labels="data/labels/{shard}.parquet",
        stats="data/labels/{shard}.stats.json",
    log:
        "logs/label_3dmm/{shard}.log",
    benchmark:
        "logs/benchmark/label_3dmm/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 4000 * attempt,
        runtime=lambda w, attempt: 60 * attempt,
        gpu=lambda w: (
            1
            if config["labels"]["labeller"] in ("dad3dnet", "model", "vggheads")
            and config["labels"]["device"] != "cpu"
            else 0
        ),
    params:
        file=PARAMS,
        cfg=lambda w: config["labels"],
    shell:
        "vggheads label-3dmm"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --render-table {input.table}"
        " --images {input.images}"
        " --detections {input.detections}"
        " --truth {input.truth}"
        " --head-model {input.head_model}"
        " --out {output.labels}"
        " --stats {output.stats}"
        " > {log} 2>&1"


rule filter:
    input:
        table="data/render/{shard}.parquet",
        images="data/render/{shard}",
        detections="data/detections/{shard}.parquet",
        weights="data/detector/head_detector.pt",
        truth="data/render/{shard}.heads.parquet",
        labels="data/labels/{shard}.parquet",
        head_model=HEAD_MODEL,
    output:
        filter="data/filter/{shard}.parquet",
        stats="data/filter/{shard}.stats.json",
        agreement="data/filter/{shard}.agreement.parquet",
        agreement_heads="data/filter/{shard}.agreement_heads.parquet",
    log:
        "logs/filter/{shard}.log",
    benchmark:
        "logs/benchmark/filter/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=lambda w, attempt: 3000 * attempt,
        runtime=lambda w, attempt: 30 * attempt,
        gpu=lambda w: 0 if config["detector"]["device"] == "cpu" else 1,
    params:
        file=PARAMS,
        cfg=lambda w: config["filter"],
        detector=lambda w: config["detector"],
        labels=lambda w: config["labels"],
    shell:
        "vggheads filter"
        " --params {params.file}"
        " --shard {wildcards.shard}"
        " --render-table {input.table}"
        " --images {input.images}"
        " --detections {input.detections}"
        " --weights {input.weights}"
        " --truth {input.truth}"
        " --labels {input.labels}"
        " --head-model {input.head_model}"
        " --out {output.filter}"
        " --stats {output.stats}"
        " --agreement {output.agreement}"
        " --agreement-heads {output.agreement_heads}"
        " > {log} 2>&1"
