"""Cross-key rules of params.yaml: the combinations the schema cannot reject key by key.

``workflow/schemas/params.schema.yaml`` checks every key on its own; the rules here check keys
against each other. Both run in :func:`vggheads.config.validate`, so an incompatible config stops
``snakemake`` (even ``--dry-run``), ``dvc repro`` and every stage command before any job starts.

Each rule is a function of the params that returns ``None`` when they are fine, else one message
that names both keys with their values and a setting that works. To add one, write it below with
the ``@rule`` decorator; ``tests/test_config.py`` holds one failing and one fixed config per rule
(a test fails when a rule has none).
"""

from __future__ import annotations

from typing import Callable

Rule = Callable[[dict], "str | None"]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def check(params: dict) -> list[str]:
    """The messages of every rule the params break (empty when they are consistent)."""
    return [message for fn in RULES if (message := fn(params))]


def _get(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _is(key: str, value) -> str:
    return f"{key}: {value}"


def _scene_truth(p: dict) -> bool:
    """Whether the renders carry an exact truth: procedural renders, and SDXL renders painted around the
    procedural scene (render.sdxl.conditioning: head-mesh or pose+head-mesh; issue 14)."""
    backend = _get(p, "render.backend")
    return backend == "procedural" or (
        backend in ("sdxl", "tiny-sdxl") and _get(p, "render.sdxl.conditioning") in ("head-mesh", "pose+head-mesh")
    )


@rule
def truth_labeller_needs_procedural_renders(p: dict) -> str | None:
    backend = _get(p, "render.backend")
    if _get(p, "labels.labeller") == "truth" and not _scene_truth(p):
        return (
            f"{_is('labels.labeller', 'truth')} needs render.backend: procedural (it is '{backend}') or "
            f"render.sdxl.conditioning: head-mesh / pose+head-mesh: only those renders carry the exact truth it "
            f"copies. With render.backend: {backend} set labels.labeller: landmark-fit (its weights ship in the "
            f"packages)"
        )
    return None


@rule
def oracle_detector_needs_procedural_renders(p: dict) -> str | None:
    backend = _get(p, "render.backend")
    if _get(p, "detector.oracle") and not _scene_truth(p):
        return (
            f"{_is('detector.oracle', 'true')} needs render.backend: procedural (it is '{backend}') or "
            f"render.sdxl.conditioning: head-mesh / pose+head-mesh: the oracle writes the exact truth boxes of "
            f"the renders. Set detector.oracle: false (the trained detector) or render.backend: procedural"
        )
    return None


@rule
def ultralytics_poses_need_images(p: dict) -> str | None:
    if _get(p, "poses.backend") == "ultralytics" and not _get(p, "poses.ultralytics.images"):
        return (
            "poses.backend: ultralytics needs poses.ultralytics.images (it is null): YOLO-pose runs on the real "
            "images of the sampled rows. Set poses.ultralytics.images: downloaded (stage download_images fetches "
            "them), their folder (img2dataset output) or a glob of .tar shards, or poses.backend: procedural"
        )
    return None


@rule
def coco_labelled_subset_needs_its_files(p: dict) -> str | None:
    if _get(p, "detector.labelled.source") != "coco":
        return None
    missing = [k for k in ("coco_json", "coco_images") if not _get(p, f"detector.labelled.{k}")]
    if missing:
        keys = " and ".join(f"detector.labelled.{k}" for k in missing)
        return (
            f"detector.labelled.source: coco needs {keys} (null): the detector learns from that COCO json of "
            f"head boxes. Set them, or detector.labelled.source: procedural"
        )
    return None


@rule
def half_precision_needs_a_gpu(p: dict) -> str | None:
    used = (
        [("render.sdxl", f"render.backend: {_get(p, 'render.backend')}")]
        if _get(p, "render.backend") in ("sdxl", "tiny-sdxl")
        else []
    )
    if _get(p, "captions.source") == "blip2":
        used.append(("captions.blip2", "captions.source: blip2"))
    for section, why in used:
        if _get(p, f"{section}.device") == "cpu" and _get(p, f"{section}.dtype") == "float16":
            return (
                f"{section}.dtype: float16 needs a GPU, but {section}.device is cpu ({why}): torch runs "
                f"half-precision convolutions and matmuls on CUDA only. Set {section}.dtype: auto (float32 on "
                f"a CPU), float32 or bfloat16, or {section}.device: auto/cuda on a GPU node"
            )
    return None


@rule
def training_needs_a_training_shard(p: dict) -> str | None:
    shards, val = _get(p, "dataset.shards"), _get(p, "manifest.val_shards")
    if isinstance(shards, int) and isinstance(val, int) and val >= shards:
        return (
            f"manifest.val_shards: {val} makes all of dataset.shards: {shards} validation shards, so train gets "
            f"no training images. Set manifest.val_shards: {shards - 1} or dataset.shards: {val + 1}"
        )
    return None


@rule
def synthetic_val_split_needs_validation_shards(p: dict) -> str | None:
    if _get(p, "evaluate.synthetic_val.split") == "val" and _get(p, "manifest.val_shards") == 0:
        return (
            "evaluate.synthetic_val.split: val needs manifest.val_shards >= 1 (it is 0): the validation split "
            "would be empty. Set manifest.val_shards: 1, or evaluate.synthetic_val.split: train"
        )
    return None


@rule
def dad3dnet_labels_need_flame(p: dict) -> str | None:
    uses = (
        "labels.labeller"
        if _get(p, "labels.labeller") == "dad3dnet"
        else "labels.quality_labellers"
        if "dad3dnet" in (_get(p, "labels.quality_labellers") or [])
        else None
    )
    if uses and not _get(p, "headmodel.flame"):
        return (
            f"{uses} with dad3dnet needs headmodel.flame (it is null): DAD-3DNet predicts FLAME's parameters, "
            f"which decode to wrong heads on the project's procedural head model. Set headmodel.flame to your "
            f"FLAME generic_model.pkl, or use labels.labeller: truth (procedural renders) or landmark-fit"
        )
    return None


@rule
def dad3dheads_benchmark_needs_flame(p: dict) -> str | None:
    if _get(p, "evaluate.dad3dheads.root") and not _get(p, "headmodel.flame"):
        return (
            "evaluate.dad3dheads.root needs headmodel.flame (it is null): DAD-3DHeads' meshes are FLAME meshes, "
            "scored through FLAME's landmark embedding and vertex subsets. Set headmodel.flame to your FLAME "
            "generic_model.pkl, or evaluate.dad3dheads.root: null"
        )
    return None


@rule
def model_init_needs_a_detector_of_its_architecture(p: dict) -> str | None:
    """train.init: detector copies the head detector's weights: the detector must be the model's own
    ultralytics architecture (base and size), built from its yaml."""
    if _get(p, "train.init") != "detector":
        return None
    arch = _get(p, "detector.architecture")
    want = f"{_get(p, 'model.base')}{_get(p, 'model.size')}.yaml"
    if arch == want or str(arch).endswith(".pt"):
        return None
    return (
        f"{_is('train.init', 'detector')} starts the model from the head detector, but "
        f"{_is('detector.architecture', arch)} is not the model's architecture "
        f"({_is('model.base', _get(p, 'model.base'))}, {_is('model.size', _get(p, 'model.size'))}). "
        f"Set detector.architecture: {want}, or train.init: scratch"
    )


@rule
def release_source_trains_from_scratch(p: dict) -> str | None:
    """dataset.source: release reads the released images and labels; the head detector that
    train.init: detector copies is trained on this project's renders, which a release run does not
    make (the generation DAG would run just for it)."""
    if _get(p, "dataset.source") == "release" and _get(p, "train.init") == "detector":
        return (
            f"{_is('dataset.source', 'release')} trains on the released dataset, but "
            f"{_is('train.init', 'detector')} needs the head detector trained on this project's own renders "
            f"(the whole generation DAG would run for it). Set train.init: scratch"
        )
    return None
