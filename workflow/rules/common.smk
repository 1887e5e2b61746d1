# Shared by every rule file: validated config, shard ids, the frozen params path. No rules here;
# the logic lives in vggheads.workflow.
from vggheads.workflow import caption_sources, prepare

PARAMS, SHARDS = prepare(
    config
)  # stops the run with a clear message on a bad key or value


wildcard_constraints:
    shard=r"\d{5}",


FINAL_TARGETS = []  # each rule file appends the outputs `rule all` should build
