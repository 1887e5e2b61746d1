"""Parse-time glue for ``workflow/rules/release.smk`` (``dataset.source: release``)."""

from __future__ import annotations

from pathlib import Path


def release_splits(config: dict) -> tuple[str, list[str]]:
    """(folder holding the split_000NN folders, split ids to import) from ``dataset.release``; a
    Snakemake WorkflowError naming the key when the release cannot be found."""
    from snakemake.exceptions import WorkflowError

    from ..errors import VggheadsError
    from .layout import list_splits, split_root

    cfg = config["dataset"]["release"]
    if not cfg["root"]:
        raise WorkflowError(
            "dataset.source is 'release' but dataset.release.root is not set: point it at the unpacked "
            "VGGHeads release (the folder holding large/split_000NN/); see docs/release.md"
        )
    try:
        base = split_root(cfg["root"])
        found = list_splits(cfg["root"])
    except VggheadsError as exc:
        raise WorkflowError(f"dataset.release.root: {exc}") from None
    wanted = [f"{int(s):05d}" for s in cfg["splits"]] if cfg["splits"] else found
    missing = [s for s in wanted if s not in found]
    if missing:
        raise WorkflowError(
            f"dataset.release.splits: split_{', split_'.join(missing)} not found under {base} "
            f"(found: {len(found)} splits, {found[0]}..{found[-1]})"
        )
    return str(Path(base).resolve()), wanted


def check_official_files(config: dict) -> None:
    """Stop the workflow at parse time, naming file, origin and licence, when the configuration asks
    for the released model (``evaluate.systems: [vggheads-official]`` or ``labels.labeller: vggheads``)
    and its file is not there."""
    from snakemake.exceptions import WorkflowError

    from .official import missing_model_error

    wanted = []
    if "vggheads-official" in config["evaluate"]["systems"]:
        wanted.append((config["evaluate"]["vggheads_official"]["weights"], "evaluate.vggheads_official.weights"))
    if config["dataset"]["source"] != "release" and config["labels"]["labeller"] == "vggheads":
        wanted.append((config["labels"]["vggheads"]["weights"], "labels.vggheads.weights"))
    for path, key in wanted:
        if not Path(path).exists():
            raise WorkflowError(str(missing_model_error(path, key)))
