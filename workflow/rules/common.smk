# Shared by every rule file: validated config, shard ids, the frozen params path. No rules here.
from vggheads.workflow import prepare

PARAMS, SHARDS = prepare(config)  # stops the run with a clear message on a bad key or value

wildcard_constraints:
    shard=r"\d{5}",

FINAL_TARGETS = []  # each rule file appends the outputs `rule all` should build


def all_targets(wildcards):
    return FINAL_TARGETS


def caption_sources(wildcards):
    """The LAION metadata files (globs expanded), so a changed source reruns sample_captions."""
    from vggheads.captions.sources import resolve

    return resolve(config["captions"]["sources"])
