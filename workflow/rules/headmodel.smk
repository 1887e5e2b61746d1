# Phase: the head model (paper section 2; docs/headmodel.md). A user's FLAME file, when
# headmodel.flame names one, replaces the procedural model; every later rule reads HEAD_MODEL.

HEAD_MODEL = config["headmodel"]["flame"] or "data/headmodel/head_model.npz"

if not config["headmodel"]["flame"]:

    rule build_head_model:
        output:
            model="data/headmodel/head_model.npz",
        log:
            "logs/build_head_model.log",
        benchmark:
            "logs/benchmark/build_head_model.tsv"
        threads: 1
        resources:
            mem_mb=3000,
            runtime=15,
        params:
            file=PARAMS,
            cfg=lambda w: config["headmodel"],
        shell:
            "vggheads build-head-model"
            " --params {params.file}"
            " --out {output.model}"
            " > {log} 2>&1"
