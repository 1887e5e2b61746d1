"""Stage ``evaluate``: every benchmark whose data is configured, for every configured system.

Benchmarks (``evaluate:`` in params.yaml): the synthetic validation split of the manifests (always,
when a head-detecting system is evaluated), AFLW2000-3D, BIWI, DAD-3DHeads, WIDER FACE val and
FDDB, each with its own protocol (:mod:`vggheads.evaluation`). Systems: ``model`` (this project's
trained model, ``--model``) and real peers whose weights ship in packages (``mtcnn``,
``dlib-hog``, ``dlib-mmod``, ``dlib-68``). Each system runs on the benchmarks it can take part in
(:data:`CAPABILITIES`).

Outputs: ``<metrics>/<benchmark>.json`` (DVC metrics: system -> metrics, with the protocol
variant), ``<plots>/`` (PR/ROC curves and error histograms, CSV + PNG), the results table
against the paper's numbers (markdown), and one MLflow run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)

BENCHMARKS = ("synthetic_val", "aflw2000", "biwi", "dad3dheads", "wider", "fddb")
MODEL_MIN_SCORE = 0.01
CAPABILITIES = {
    "model": set(BENCHMARKS),
    "mtcnn": {"wider", "fddb"},
    "dlib-hog": {"wider", "fddb"},
    "dlib-mmod": {"wider", "fddb"},
    "dlib-68": {"aflw2000", "biwi"},
    "vggheads-official": set(BENCHMARKS),  # the paper's released model (docs/release.md)
}
PROBABILITY_SYSTEMS = ("model", "vggheads-official")  # scores are probabilities: the papers' thresholds apply


def enabled_benchmarks(params: dict) -> list[str]:
    """The benchmarks this configuration runs: the synthetic val, and each one whose data is set."""
    cfg = params["evaluate"]
    out = ["synthetic_val"]
    if cfg["aflw2000"]["root"]:
        out.append("aflw2000")
    if cfg["biwi"]["root"] and cfg["biwi"]["annotations"]:
        out.append("biwi")
    if cfg["dad3dheads"]["root"]:
        out.append("dad3dheads")
    if cfg["wider"]["ground_truth"] and cfg["wider"]["images"]:
        out.append("wider")
    if cfg["fddb"]["folds"] and cfg["fddb"]["images"]:
        out.append("fddb")
    return out


def build_systems(params: dict, model: Path | None, head_model: Path | None) -> dict:
    """name -> Predictor for the systems in ``evaluate.systems``."""
    from ..errors import ConfigError
    from ..evaluation.peers import DlibHogDetector, DlibLandmarks68, DlibMmodDetector, MtcnnDetector

    cfg = params["evaluate"]
    peers = cfg["peers"]
    systems = {}
    for name in cfg["systems"]:
        if name == "model":
            if model is None:
                raise ConfigError("evaluate.systems lists 'model' but no trained model was given (--model)")
            from ..model.inference import HeadDetector

            # a low score threshold: each protocol applies its own (WIDER 0.01, DAD 0.2, AFLW/BIWI 0.5 then 0.1)
            detector = HeadDetector(model, head_model=head_model, conf=MODEL_MIN_SCORE, max_det=1000)
            systems[name] = detector.predictor()
        elif name == "mtcnn":
            systems[name] = MtcnnDetector(min_face_size=peers["mtcnn_min_face_size"])
        elif name == "dlib-hog":
            systems[name] = DlibHogDetector(upsample=peers["dlib_upsample"])
        elif name == "dlib-mmod":
            systems[name] = DlibMmodDetector(upsample=peers["dlib_upsample"])
        elif name == "vggheads-official":
            from ..evaluation.peers import build_peer

            c = cfg["vggheads_official"]
            systems[name] = build_peer(
                name,
                weights=c["weights"],
                head_model=head_model,
                preprocess=c["preprocess"],
                device=c["device"],
                bgr_benchmarks=c["bgr_benchmarks"],
            )
        elif name == "dlib-68":
            landmark_model = None
            if head_model is not None:
                from ..core.fitting import LandmarkModel
                from ..headmodel import load_head_model

                landmark_model = LandmarkModel.from_head_model(
                    load_head_model(head_model), n_shape=peers["fit_shape"], n_expr=peers["fit_expression"]
                )
            else:
                log.warning("dlib-68 without a head model: landmarks only, no pose")
            systems[name] = DlibLandmarks68(
                detector=peers["dlib_68_detector"],
                upsample=peers["dlib_upsample"],
                landmark_model=landmark_model,
                fit_kwargs={"prior_weight": peers["fit_prior_weight"]},
            )
    return systems


def _model_only(system: str, threshold):
    """The papers' score thresholds are for the model's probabilities; peers' scores live on other
    scales (dlib's SVM margins go below 0), so peers keep all their detections."""
    return threshold if system in PROBABILITY_SYSTEMS else None


def _pose_scores(system: str) -> dict:
    return (
        {"min_score": 0.5, "fallback_score": 0.1}
        if system in PROBABILITY_SYSTEMS
        else {"min_score": None, "fallback_score": None}
    )


def _first(items: list, n: int | None) -> list:
    return items if n is None else items[:n]


@dataclass(frozen=True)
class _Inputs:
    """What a benchmark may need beyond its own params section."""

    head_model: Path | None
    val_images: Path | None
    val_heads: Path | None


# Each benchmark: (evaluate params, max images, inputs) -> a function scoring one system
# (system name, predictor) -> BenchmarkResult, after reading the benchmark once; None to skip it.


def _synthetic_val(cfg: dict, n: int | None, inputs: _Inputs):
    from ..evaluation import synthetic

    if inputs.val_images is None or inputs.val_heads is None:
        log.info("synthetic_val: no manifests given; skipped")
        return None
    c = cfg["synthetic_val"]
    images = synthetic.read_manifest(inputs.val_images, inputs.val_heads, split=c["split"], max_images=n)
    head_indices = None
    if c["points"] == "head_vertices":
        from ..headmodel import load_head_model

        head_indices = load_head_model(inputs.head_model).subsets["head"]
    return lambda sysname, pred: synthetic.evaluate_synthetic(images, pred, sysname, c["points"], head_indices)


def _aflw2000(cfg: dict, n: int | None, inputs: _Inputs):
    from ..evaluation import aflw2000

    c = cfg["aflw2000"]
    samples, filtered = aflw2000.read_aflw2000(c["root"], c["max_angle_deg"])
    return lambda sysname, pred: aflw2000.evaluate_aflw2000(
        _first(samples, n), pred, sysname, filtered, large_angle_rule=c["large_angle_rule"], **_pose_scores(sysname)
    )


def _biwi(cfg: dict, n: int | None, inputs: _Inputs):
    from ..evaluation import biwi

    c = cfg["biwi"]
    frames = biwi.read_biwi(c["annotations"], c["subset"], c["root"], c["ground_truth"])
    return lambda sysname, pred: biwi.evaluate_biwi(
        frames,
        pred,
        sysname,
        c["subset"],
        c["convention"],
        c["selection"],
        c["ground_truth"],
        large_angle_rule=c["large_angle_rule"],
        max_images=n,
        **_pose_scores(sysname),
    )


def _dad3dheads(cfg: dict, n: int | None, inputs: _Inputs):
    from ..evaluation import dad3dheads
    from ..headmodel import load_head_model

    c = cfg["dad3dheads"]
    if inputs.head_model is None:
        from ..errors import ConfigError

        raise ConfigError("DAD-3DHeads needs the head model of its meshes (FLAME): pass --head-model")
    topology = dad3dheads.HeadTopology.from_head_model(load_head_model(inputs.head_model))
    items = dad3dheads.read_dad3dheads(c["root"], c["subset"])
    return lambda sysname, pred: dad3dheads.evaluate_dad3dheads(
        items, pred, topology, sysname, max_images=n, min_score=_model_only(sysname, dad3dheads.PAPER_SCORE_THRESHOLD)
    )


def _wider(cfg: dict, n: int | None, inputs: _Inputs):
    from ..evaluation import wider

    c = cfg["wider"]
    images = wider.read_wider_val(c["ground_truth"], c["images"])
    return lambda sysname, pred: wider.evaluate_wider(
        images, pred, sysname, c["use_face_box"], _model_only(sysname, c["min_score"]), max_images=n
    )


def _fddb(cfg: dict, n: int | None, inputs: _Inputs):
    from ..evaluation import fddb

    c = cfg["fddb"]
    images = fddb.read_fddb(c["folds"], c["images"])
    return lambda sysname, pred: fddb.evaluate_fddb(
        images, pred, sysname, c["use_face_box"], _model_only(sysname, c["min_score"]), max_images=n
    )


READERS = {
    "synthetic_val": _synthetic_val,
    "aflw2000": _aflw2000,
    "biwi": _biwi,
    "dad3dheads": _dad3dheads,
    "wider": _wider,
    "fddb": _fddb,
}
assert tuple(READERS) == BENCHMARKS


def run_benchmark(
    name: str,
    params: dict,
    systems: dict,
    head_model: Path | None = None,
    val_images: Path | None = None,
    val_heads: Path | None = None,
) -> list:
    """Read one benchmark and score every capable system on it -> [BenchmarkResult]."""
    cfg = params["evaluate"]
    capable = {k: v for k, v in systems.items() if name in CAPABILITIES.get(k, set())}
    # a system may set itself up per benchmark (vggheads-official: the channel order of the paper's script)
    capable = {k: v.for_benchmark(name) if hasattr(v, "for_benchmark") else v for k, v in capable.items()}
    if not capable:
        log.info("%s: no configured system takes part; skipped", name)
        return []
    score = READERS[name](cfg, cfg["max_images"], _Inputs(head_model, val_images, val_heads))
    if score is None:
        return []
    return [score(sysname, pred) for sysname, pred in capable.items()]


@dataclass(frozen=True, kw_only=True)
class EvaluateJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    model: Path | None = flag(
        "trained model: model.safetensors or its folder (needed when evaluate.systems lists 'model')", None
    )
    head_model: Path | None = flag("head model .npz (dlib-68 pose fit, DAD-3DHeads topology, head-vertex NME)", None)
    val_images: Path | None = flag("images manifest (images.parquet) for the synthetic validation", None)
    val_heads: Path | None = flag("heads manifest (heads.parquet) for the synthetic validation", None)
    metrics: Path = flag("folder for <benchmark>.json metrics")
    plots: Path = flag("folder for curves and histograms (CSV + PNG)")
    report: Path = flag("markdown results table")


def evaluate(params: dict, job: EvaluateJob, systems: dict | None = None) -> dict:
    """Run every enabled benchmark; write metrics, plots, the report; log to MLflow. Returns
    {benchmark: {system: metrics}}. ``systems`` overrides the configured ones (tests)."""
    from ..evaluation.report import write_plots, write_report
    from ..io import atomic_dir, write_json
    from ..tracking import log_run

    systems = systems if systems is not None else build_systems(params, job.model, job.head_model)
    all_results = []
    summary: dict[str, dict] = {}
    out_metrics = Path(job.metrics)
    with atomic_dir(job.plots) as plots_dir:
        for bench in enabled_benchmarks(params):
            results = run_benchmark(bench, params, systems, job.head_model, job.val_images, job.val_heads)
            all_results += results
            summary[bench] = {r.system: {**r.metrics, "protocol": r.protocol} for r in results}
            write_json(out_metrics / f"{bench}.json", summary[bench] or {"note": "no system took part"})
            for r in results:
                write_plots(r, plots_dir)
                log.info(
                    "%s / %s: %s",
                    bench,
                    r.system,
                    ", ".join(f"{k}={v:.3f}" for k, v in r.metrics.items() if isinstance(v, float)),
                )
    write_report(all_results, job.report)
    numeric = {
        b: {s: {k: v for k, v in m.items() if k != "protocol"} for s, m in per.items()} for b, per in summary.items()
    }
    protocols = {
        f"{b}.{s}.{k}": v for b, per in summary.items() for s, m in per.items() for k, v in m["protocol"].items()
    }
    log_run(
        "evaluate",
        params,
        metrics=numeric,
        run_params={"evaluate": params["evaluate"]},
        tags=None,
        artifacts=[job.report, job.plots, *[out_metrics / f"{b}.json" for b in summary]],
    )
    if protocols:
        log.info("protocol variants: %s", "; ".join(f"{k}={v}" for k, v in sorted(protocols.items())))
    return summary


def _cli(job: EvaluateJob) -> int:
    from ..config import load_params

    evaluate(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "evaluate",
        EvaluateJob,
        _cli,
        help="score the model and real peers on every configured benchmark",
        description=__doc__,
    )
