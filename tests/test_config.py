"""params.yaml validation: a wrong key or value names the key and what was expected."""

import copy

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


@pytest.mark.parametrize("path,value,expect", [
    (("captions", "diversity_p"), 1.5, "key 'captions.diversity_p': expected number >= 0, <= 1"),
    (("dataset", "shards"), "two", "key 'dataset.shards': expected integer"),
    (("poses", "backend"), "openpose", "key 'poses.backend': expected one of 'procedural', 'ultralytics'"),
    (("captions", "sources"), [], "key 'captions.sources': expected array"),
])
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


def test_prepare_freezes_the_merged_config_for_the_jobs(tmp_path, params, monkeypatch):
    from vggheads.workflow import FROZEN_PARAMS, prepare

    monkeypatch.chdir(tmp_path)
    path, shards = prepare(params)
    assert path == str(FROZEN_PARAMS) and shards == shard_ids(params)
    assert yaml.safe_load(FROZEN_PARAMS.read_text()) == params
    mtime = FROZEN_PARAMS.stat().st_mtime_ns
    prepare(copy.deepcopy(params))
    assert FROZEN_PARAMS.stat().st_mtime_ns == mtime  # same content: not rewritten
    other = copy.deepcopy(params)
    other["seed"] += 1
    prepare(other)
    assert yaml.safe_load(FROZEN_PARAMS.read_text())["seed"] == params["seed"] + 1


def test_shards_and_seeds(params):
    p = copy.deepcopy(params)
    p["dataset"]["shards"] = 3
    assert shard_ids(p) == ["00000", "00001", "00002"]
    assert sample_seed(p, 0, 1) == sample_seed(p, 0, 1)
    assert sample_seed(p, 0, 1) != sample_seed(p, 1, 1)
    assert rng(p, "a", 0).random() != rng(p, "b", 0).random()
