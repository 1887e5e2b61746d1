"""params.yaml validation: a wrong key or value names the key and what was expected."""

import copy
from pathlib import Path

import pytest
import yaml

from vggheads.config import load_params, rng, sample_seed, shard_ids, validate
from vggheads.errors import ConfigError


def test_default_params_are_valid(params):
    assert params["dataset"]["shards"] >= 1


def test_every_key_in_params_yaml_has_a_comment():
    from vggheads.config import REPO_ROOT

    for n, line in enumerate((REPO_ROOT / "params.yaml").read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        if stripped.endswith(":") or ": " in stripped:
            assert "#" in line, f"params.yaml line {n} has no comment: {line!r}"


@pytest.mark.parametrize(
    "path,value,expect",
    [
        (("captions", "diversity_p"), 1.5, "key 'captions.diversity_p': expected number >= 0, <= 1"),
        (("dataset", "shards"), "two", "key 'dataset.shards': expected integer"),
        (("poses", "backend"), "openpose", "key 'poses.backend': expected one of 'procedural', 'ultralytics'"),
        (("captions", "sources"), [], "key 'captions.sources': expected array"),
    ],
)
def test_bad_value_names_key_and_expectation(params, path, value, expect):
    bad = copy.deepcopy(params)
    bad[path[0]][path[1]] = value
    with pytest.raises(ConfigError) as err:
        validate(bad)
    assert expect in str(err.value)


def test_unknown_key_is_named_with_the_allowed_ones(params):
    bad = copy.deepcopy(params)
    bad["captions"]["max_aspect"] = 2
    with pytest.raises(ConfigError, match=r"unknown key 'captions.max_aspect' \(allowed here: .*max_aspect_ratio"):
        validate(bad)


def test_missing_section_is_named(params):
    bad = copy.deepcopy(params)
    del bad["poses"]
    with pytest.raises(ConfigError, match="'poses' missing"):
        validate(bad)


def test_load_params_reports_file_and_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_params(broken)


def test_prepare_freezes_each_merged_config_in_its_own_file_never_rewritten(tmp_path, params, monkeypatch):
    from vggheads.workflow import FROZEN_DIR, prepare

    monkeypatch.chdir(tmp_path)
    path, shards = prepare(params)
    assert shards == shard_ids(params)
    assert Path(str(path)).parent == FROZEN_DIR and yaml.safe_load(Path(str(path)).read_text()) == params
    mtime = Path(str(path)).stat().st_mtime_ns
    again, _ = prepare(copy.deepcopy(params))
    assert str(again) == str(path) and Path(str(path)).stat().st_mtime_ns == mtime  # same content: same file
    other = copy.deepcopy(params)
    other["seed"] += 1
    other_path, _ = prepare(other)  # e.g. a concurrent `snakemake -n --config seed=1`
    assert str(other_path) != str(path)
    assert yaml.safe_load(Path(str(other_path)).read_text())["seed"] == params["seed"] + 1
    assert yaml.safe_load(Path(str(path)).read_text()) == params and Path(str(path)).stat().st_mtime_ns == mtime


def test_frozen_params_format_as_the_path_and_record_only_the_seed_for_the_rerun_trigger(params, tmp_path, monkeypatch):
    """Snakemake formats the param into the shell command, and its params trigger records repr()."""
    import pickle

    from snakemake.utils import SequenceFormatter

    from vggheads.workflow import prepare

    monkeypatch.chdir(tmp_path)
    path, _ = prepare(params)
    assert SequenceFormatter().format("--params {p} --x", p=path) == f"--params {path.path} --x"
    assert repr(path) == f"frozen params (seed {params['seed']})"
    other = copy.deepcopy(params)
    other["poses"]["stickwidth"] += 1
    assert repr(prepare(other)[0]) == repr(path)  # another section changed: only its rules rerun
    other["seed"] += 1
    assert repr(prepare(other)[0]) != repr(path)  # the seed changed: every rule reruns
    assert pickle.loads(pickle.dumps(path)) == path and repr(pickle.loads(pickle.dumps(path))) == repr(path)


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    from snakemake.exceptions import WorkflowError

    from vggheads.workflow import checked_configfile

    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 0\ndataset: [1, 2\n")
    with pytest.raises(WorkflowError, match=r"params.yaml: not valid YAML(.|\n)*in \".*params.yaml\", line 2"):
        checked_configfile(str(bad))
    with pytest.raises(ConfigError, match=r"params.yaml\", line 2"):
        load_params(bad)
    good = tmp_path / "good.yaml"
    good.write_text("seed: 0\n")
    assert checked_configfile(str(good)) == str(good)


# ---------------------------------------------------------------- cross-key rules (vggheads.config_rules)

# rule name -> (overrides that break it, what its message must say, overrides on top that fix it)
BROKEN = {
    "truth_labeller_needs_procedural_renders": (
        {"render": {"backend": "tiny-sdxl"}},
        ["labels.labeller: truth", "render.backend: procedural", "labels.labeller: landmark-fit"],
        {"labels": {"labeller": "landmark-fit"}},
    ),
    "oracle_detector_needs_procedural_renders": (
        {"render": {"backend": "tiny-sdxl"}, "labels": {"labeller": "landmark-fit"}, "detector": {"oracle": True}},
        ["detector.oracle: true", "render.backend: procedural", "detector.oracle: false"],
        {"detector": {"oracle": False}},
    ),
    "ultralytics_poses_need_images": (
        {"poses": {"backend": "ultralytics", "ultralytics": {"images": None}}},
        ["poses.backend: ultralytics", "poses.ultralytics.images", "poses.backend: procedural"],
        {"poses": {"ultralytics": {"images": "data/images"}}},
    ),
    "coco_labelled_subset_needs_its_files": (
        {"detector": {"labelled": {"source": "coco", "coco_json": "boxes.json"}}},
        ["detector.labelled.source: coco", "detector.labelled.coco_images", "detector.labelled.source: procedural"],
        {"detector": {"labelled": {"coco_images": "images"}}},
    ),
    "half_precision_needs_a_gpu": (
        {
            "render": {"backend": "tiny-sdxl", "sdxl": {"device": "cpu", "dtype": "float16"}},
            "labels": {"labeller": "landmark-fit"},
        },
        ["render.sdxl.dtype: float16", "render.sdxl.device is cpu", "render.sdxl.dtype: auto"],
        {"render": {"sdxl": {"dtype": "bfloat16"}}},
    ),
    "half_precision_needs_a_gpu (captions)": (
        {"captions": {"source": "blip2", "blip2": {"device": "cpu", "dtype": "float16"}}},
        ["captions.blip2.dtype: float16", "captions.blip2.device is cpu", "captions.blip2.dtype: auto"],
        {"captions": {"blip2": {"dtype": "auto"}}},
    ),
    "training_needs_a_training_shard": (
        {"dataset": {"shards": 2}, "manifest": {"val_shards": 2}},
        ["manifest.val_shards: 2", "dataset.shards: 2", "manifest.val_shards: 1"],
        {"manifest": {"val_shards": 1}},
    ),
    "synthetic_val_split_needs_validation_shards": (
        {"manifest": {"val_shards": 0}},
        ["evaluate.synthetic_val.split: val", "manifest.val_shards", "manifest.val_shards: 1"],
        {"evaluate": {"synthetic_val": {"split": "train"}}},
    ),
    "dad3dnet_labels_need_flame": (
        {"labels": {"labeller": "dad3dnet"}},
        ["labels.labeller with dad3dnet", "headmodel.flame", "labels.labeller: truth"],
        {"headmodel": {"flame": "models/flame/generic_model.pkl"}},
    ),
    "dad3dheads_benchmark_needs_flame": (
        {"evaluate": {"dad3dheads": {"root": "data/dad"}}},
        ["evaluate.dad3dheads.root", "headmodel.flame", "evaluate.dad3dheads.root: null"],
        {"headmodel": {"flame": "models/flame/generic_model.pkl"}},
    ),
    "model_init_needs_a_detector_of_its_architecture": (
        {"detector": {"architecture": "rtdetr-l.yaml"}},
        [
            "train.init: detector",
            "detector.architecture: rtdetr-l.yaml",
            "detector.architecture: yolo11n.yaml",
            "train.init: scratch",
        ],
        {"detector": {"architecture": "yolo11n.yaml"}},
    ),
    "release_source_trains_from_scratch": (
        {"dataset": {"source": "release", "release": {"root": "data/VGGHeads"}}},
        ["dataset.source: release", "train.init: detector", "train.init: scratch"],
        {"train": {"init": "scratch"}},
    ),
}


def test_every_cross_key_rule_has_a_case_below():
    from vggheads.config_rules import RULES

    assert {fn.__name__ for fn in RULES} == {name.split(" ")[0] for name in BROKEN}


def test_the_defaults_break_no_rule(params):
    from vggheads.config_rules import check

    assert check(params) == []


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_cross_key_rule_names_both_keys_and_a_setting_that_works(params, name):
    from conftest import merge
    from vggheads.config_rules import check

    breaks, says, fixes = BROKEN[name]
    bad = merge(params, breaks)
    with pytest.raises(ConfigError) as err:
        validate(bad, "my.yaml")
    text = str(err.value)
    assert text.startswith("my.yaml: incompatible settings")
    for fragment in says:
        assert fragment in text, f"{name}: {fragment!r} not in {text!r}"
    assert check(merge(bad, fixes)) == [], f"{name}: the suggested fix does not satisfy the rules"


def test_incompatible_dry_run_stops_at_once_naming_both_keys(tmp_path):
    """The issue's case: only render.backend changed from the defaults; no job may start."""
    import subprocess

    from conftest import copy_project, tool_env

    project = copy_project(tmp_path)
    (project / "over.yaml").write_text("render:\n  backend: tiny-sdxl\n")
    res = subprocess.run(
        ["snakemake", "--dry-run", "--configfile", "over.yaml"],
        cwd=project,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "labels.labeller: truth needs render.backend: procedural" in out, out
    assert "Traceback" not in out and "rule " not in out


def test_shards_and_seeds(params):
    p = copy.deepcopy(params)
    p["dataset"]["shards"] = 3
    assert shard_ids(p) == ["00000", "00001", "00002"]
    assert sample_seed(p, 0, 1) == sample_seed(p, 0, 1)
    assert sample_seed(p, 0, 1) != sample_seed(p, 1, 1)
    assert rng(p, "a", 0).random() != rng(p, "b", 0).random()


def test_every_schema_key_says_what_it_is():
    """Each key of params.schema.yaml carries a description (from the params.yaml comment beside the key)."""
    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "workflow/schemas/params.schema.yaml").read_text())
    bare = []

    def walk(node: dict, path: str) -> None:
        for key, prop in node.get("properties", {}).items():
            if not (isinstance(prop.get("description"), str) and prop["description"].strip()):
                bare.append(f"{path}{key}")
            walk(prop, f"{path}{key}.")

    walk(schema, "")
    assert not bare, f"schema keys without a description: {bare}"
