# Phase: train the multi-task detector on the manifests (paper sections 3-4; docs/model.md).
# A killed job resumes from its last epoch: the ultralytics run lives in data/model/.work (not an output).


rule train:
    input:
        images="data/manifest/images.parquet",
        heads="data/manifest/heads.parquet",
        head_model=HEAD_MODEL,
        init=(
            ["data/detector/head_detector.pt"]
            if config["train"]["init"] == "detector"
            else []
        ),
    output:
        weights="data/model/model.safetensors",
        config="data/model/model.json",
        onnx="data/model/model.onnx",
        metrics="metrics/train.json",
        history="plots/train/history.csv",
        curves=report(
            "plots/train/curves.png",
            category="Training",
            caption="../report/training.rst",
        ),
        predictions=report(
            "plots/train/predictions.png",
            category="Training",
            caption="../report/training.rst",
        ),
    log:
        "logs/train.log",
    benchmark:
        "logs/benchmark/train.tsv"
    threads: 2
    resources:
        mem_mb=lambda w, attempt: 8000 * attempt,
        runtime=lambda w, attempt: 120 * attempt,
        gpu=lambda w: 0 if config["train"]["device"] == "cpu" else 1,
    params:
        file=PARAMS,
        model=lambda w: config["model"],
        train=lambda w: config["train"],
        init=lambda w, input: f" --init-weights {input.init}" if input.init else "",
    shell:
        "vggheads train"
        " --params {params.file}"
        " --images {input.images}"
        " --heads {input.heads}"
        " --head-model {input.head_model}"
        " --out-dir data/model"
        " --metrics {output.metrics}"
        " --plots plots/train"
        " --work-dir data/model/.work"
        " --threads {threads}"
        "{params.init}"
        " > {log} 2>&1"


FINAL_TARGETS += ["data/model/model.safetensors", "metrics/train.json"]
