# Phase (dataset.source: release): the paper's released dataset (VGGHeads.tar, CC BY-NC 4.0) instead of
# the generation stages (docs/release.md). One import job per split_000NN, then the manifests that
# train and evaluate read, as build_manifest writes them for generated data. The released model's
# files are checked here too, so a missing one names its origin and licence before any job runs.

from vggheads.release.workflow import check_official_files, release_splits

check_official_files(config)

if config["dataset"]["source"] == "release":
    RELEASE_ROOT, RELEASE_SPLITS = release_splits(config)

    rule import_release:
        input:
            annotations=f"{RELEASE_ROOT}/split_{{shard}}/annotations",
            head_model=HEAD_MODEL,
        output:
            images="data/release/{shard}/images.parquet",
            heads="data/release/{shard}/heads.parquet",
            boxes="data/release/{shard}/head_boxes.parquet",
            stats="data/release/{shard}/stats.json",
            copies=directory("data/release/{shard}/images"),
        log:
            "logs/import_release/{shard}.log",
        benchmark:
            "logs/benchmark/import_release/{shard}.tsv"
        threads: 1
        resources:
            mem_mb=lambda w, attempt: 1500 * attempt,
            runtime=lambda w, attempt: 30 * attempt,
        params:
            file=PARAMS,
            cfg=lambda w: config["dataset"]["release"],
        shell:
            "vggheads import-release"
            " --params {params.file}"
            " --shard {wildcards.shard}"
            " --head-model {input.head_model}"
            " --out-dir data/release/{wildcards.shard}"
            " --manifest-dir data/manifest"
            " --threads {threads}"
            " > {log} 2>&1"

    rule release_manifest:
        input:
            tables=expand(
                "data/release/{shard}/{table}.parquet",
                shard=RELEASE_SPLITS,
                table=["images", "heads", "head_boxes"],
            ),
            stats=expand("data/release/{shard}/stats.json", shard=RELEASE_SPLITS),
        output:
            images="data/manifest/images.parquet",
            heads="data/manifest/heads.parquet",
            boxes="data/manifest/head_boxes.parquet",
            card="metrics/dataset_card.json",
            plots=report(
                directory("plots/dataset"),
                patterns=["{name}.png"],
                category="Dataset card",
                caption="../report/dataset_card.rst",
            ),
        log:
            "logs/release_manifest.log",
        benchmark:
            "logs/benchmark/release_manifest.tsv"
        threads: 1
        resources:
            mem_mb=lambda w, attempt: 3000 * attempt,
            runtime=lambda w, attempt: 60 * attempt,
        params:
            file=PARAMS,
            cfg=lambda w: config["manifest"],
            splits=RELEASE_SPLITS,
            dirs=[f"data/release/{s}" for s in RELEASE_SPLITS],
        shell:
            "vggheads release-manifest"
            " --params {params.file}"
            " --splits {params.splits}"
            " --split-dirs {params.dirs}"
            " --out-dir data/manifest"
            " --card {output.card}"
            " --plots {output.plots}"
            " > {log} 2>&1"

    ruleorder: release_manifest > build_manifest

    # `rule all` builds the imported manifests (and, from the rule files below, train and evaluate),
    # not the generation stages
    FINAL_TARGETS[:] = [
        "data/manifest/images.parquet",
        "data/manifest/heads.parquet",
        "data/manifest/head_boxes.parquet",
        "metrics/dataset_card.json",
    ]
