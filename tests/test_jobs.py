"""Every stage's command line is built from its job dataclass (vggheads.jobs): the flags are exactly
those its Snakemake rule passes, a bad value is argparse's error, and --help shows every flag's help."""

import argparse
import dataclasses
import importlib
import re
import typing
from pathlib import Path

import pytest

from conftest import REPO
from vggheads import jobs
from vggheads.cli import build_parser


def _rule_flags() -> dict[str, set[str]]:
    """{rule: the --flags of its block (shell command and the flag strings of its params)}, comments left out."""
    out = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = "\n".join(line for line in smk.read_text().splitlines() if not line.lstrip().startswith("#"))
        for rule, body in re.findall(r"^\s*rule (\w+):(.*?)(?=^\s*rule \w+:|\Z)", text, flags=re.M | re.S):
            if rule != "all":
                out[rule] = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", body))
    return out


RULE_FLAGS = _rule_flags()
RULES = sorted(RULE_FLAGS)
# flags no rule passes, for a person running the command by hand (each optional)
BY_HAND = {"build_head_model": {"--seed"}, "build_tiny_blip2": {"--seed"}, "build_tiny_sdxl": {"--seed"}}


def job_type(rule: str) -> type:
    module = importlib.import_module(f"vggheads.stages.{rule}")
    found = [
        v
        for k, v in vars(module).items()
        if k.endswith("Job") and dataclasses.is_dataclass(v) and v.__module__ == module.__name__
    ]
    assert len(found) == 1, f"stages/{rule}.py should define one job dataclass, found {found}"
    return found[0]


def subparser(rule: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[rule.replace("_", "-")]


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings and a.dest != "help"}


def test_every_rule_has_a_stage_with_a_job():
    modules = {p.stem for p in (REPO / "src" / "vggheads" / "stages").glob("*.py") if p.stem != "__init__"}
    assert set(RULES) == modules and len(RULES) == 18


@pytest.mark.parametrize("rule", RULES)
def test_the_command_has_exactly_the_flags_of_the_rule(rule):
    job = job_type(rule)
    assert dataclasses.fields(job), rule
    flags = options(subparser(rule))
    assert set(flags) == {jobs.flag_name(f) for f in dataclasses.fields(job)}
    by_hand = BY_HAND.get(rule, set())
    assert set(flags) - by_hand == RULE_FLAGS[rule], f"rule {rule} vs `vggheads {rule.replace('_', '-')}`"
    assert not any(flags[f].required for f in by_hand)
    # the job is frozen, keyword-only, and every field is typed
    assert job.__dataclass_params__.frozen
    hints = typing.get_type_hints(job)
    assert all(f.name in hints and f.kw_only for f in dataclasses.fields(job))


def _value(tp) -> list[str]:
    tp = jobs._unwrap_optional(tp)
    if typing.get_origin(tp) is list:
        return ["a1", "a2"]
    return {int: ["3"], float: ["0.5"], str: ["00001"], Path: ["some/file"]}[tp]


@pytest.mark.parametrize("rule", RULES)
def test_the_rule_line_parses_into_its_typed_job(rule):
    job_cls = job_type(rule)
    hints = typing.get_type_hints(job_cls)
    argv = [rule.replace("_", "-")]
    for f in dataclasses.fields(job_cls):
        argv += [jobs.flag_name(f), *_value(hints[f.name])]
    args = build_parser().parse_args(argv)
    job = jobs.from_namespace(job_cls, args)
    assert isinstance(job, job_cls)
    for f in dataclasses.fields(job_cls):
        value, tp = getattr(job, f.name), jobs._unwrap_optional(hints[f.name])
        if typing.get_origin(tp) is list:
            (item,) = typing.get_args(tp)
            assert [item(v) for v in ("a1", "a2")] == value and all(isinstance(v, item) for v in value)
        else:
            assert isinstance(value, tp), (f.name, value)
    # only the required flags: the optional fields take their defaults
    required = [
        f for f in dataclasses.fields(job_cls) if subparser(rule)._option_string_actions[jobs.flag_name(f)].required
    ]
    argv = [rule.replace("_", "-")]
    for f in required:
        argv += [jobs.flag_name(f), *_value(hints[f.name])]
    job = jobs.from_namespace(job_cls, build_parser().parse_args(argv))
    for f in set(dataclasses.fields(job_cls)) - set(required):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert getattr(job, f.name) == default


@pytest.mark.parametrize("rule", RULES)
def test_a_missing_or_bad_value_is_an_argparse_error(rule, capsys):
    job_cls = job_type(rule)
    hints = typing.get_type_hints(job_cls)
    parser = build_parser()
    required = [a for a in options(subparser(rule)).values() if a.required]
    if required:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([rule.replace("_", "-")])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "the following arguments are required" in err
        assert all(a.option_strings[0] in err for a in required)
    numbers = [f for f in dataclasses.fields(job_cls) if jobs._unwrap_optional(hints[f.name]) in (int, float)]
    for f in numbers:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([rule.replace("_", "-"), jobs.flag_name(f), "many"])
        assert exc.value.code == 2
        tp = jobs._unwrap_optional(hints[f.name]).__name__
        assert f"argument {jobs.flag_name(f)}: invalid {tp} value: 'many'" in capsys.readouterr().err
    argv = [rule.replace("_", "-")]
    for f in dataclasses.fields(job_cls):
        argv += [jobs.flag_name(f), *_value(hints[f.name])]
    parser.parse_args(argv)  # valid as a whole
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([*argv, "--no-such-flag", "x"])
    assert exc.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("rule", RULES)
def test_help_lists_every_flag_with_its_help(rule, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([rule.replace("_", "-"), "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(job_type(rule)):
        assert f.metadata["help"], f"{rule}: --{f.name} has no help"
        assert jobs.flag_name(f) in text and " ".join(f.metadata["help"].split()) in text, (rule, f.name)


def test_the_field_to_flag_mapping():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Job:
        params: Path = jobs.flag("params file", Path("params.yaml"))
        shard: str = jobs.flag("shard id")
        tables: list[Path] = jobs.flag("tables")
        extra: list[str] = jobs.flag("extra values", default_factory=list)
        seed: int | None = jobs.flag("seed", None)
        ratio: float = jobs.flag("a ratio", 0.5)
        dry_run: bool = jobs.flag("only say what would be done", False)
        out_dir: Path | None = jobs.flag("output folder", None)

    parser = argparse.ArgumentParser()
    jobs.add_arguments(parser, Job)
    job = jobs.from_namespace(Job, parser.parse_args(["--shard", "7", "--tables", "a", "b", "--dry-run"]))
    assert job == Job(shard="7", tables=[Path("a"), Path("b")], dry_run=True)
    assert job.params == Path("params.yaml") and job.extra == [] and job.seed is None and job.out_dir is None
    job = jobs.from_namespace(
        Job,
        parser.parse_args(
            ["--shard", "7", "--tables", "a", "--extra", "--seed", "3", "--ratio", "2", "--out-dir", "o"]
        ),
    )
    assert (job.extra, job.seed, job.ratio, job.out_dir) == ([], 3, 2.0, Path("o"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.shard = "8"
    with pytest.raises(SystemExit):
        parser.parse_args(["--shard", "7", "--tables"])  # list without a default: one value at least

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NoHelp:
        out: Path

    with pytest.raises(TypeError, match="no help text"):
        jobs.add_arguments(argparse.ArgumentParser(), NoHelp)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Odd:
        mapping: dict = jobs.flag("a dict", None)

    with pytest.raises(TypeError, match="unsupported type"):
        jobs.add_arguments(argparse.ArgumentParser(), Odd)


def test_the_command_runs_the_stage_with_its_job(monkeypatch, tmp_path):
    """`vggheads <rule>` hands the parsed job to the stage's entry (here build-head-model's, stubbed)."""
    from vggheads import cli
    from vggheads.stages import build_head_model as stage

    seen = []
    monkeypatch.setattr(stage, "build", lambda out, seed: seen.append((out, seed)) or {})
    assert cli.main(["build-head-model", "--out", str(tmp_path / "h.npz"), "--seed", "5"]) == 0
    assert seen == [(tmp_path / "h.npz", 5)]
    assert cli.main(["build-head-model", "--out", str(tmp_path / "h.npz")]) == 0  # no --seed, no --params: 0
    assert seen[-1] == (tmp_path / "h.npz", 0)
