"""``vggheads name-check``: precision/recall of the people and name checks on hand-labelled LAION rows.

    vggheads name-check --source ../shared/data/laion/laion_sample_1000.parquet \\
        --labels tests/data/laion_caption_labels.csv [--backend spacy] [--json out.json]

Prints the tables of docs/captions.md: for every labelled row, for the dev rows (0-499) and the
held-out rows (500-999), with the backend of ``captions.names`` in --params (or --backend).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path


def _cli(args: argparse.Namespace) -> int:
    from ..captions.measure import confusion_markdown, markdown, measure, read_captions, read_labels
    from ..captions.names import build_name_check
    from ..config import load_params

    names_cfg = copy.deepcopy(load_params(args.params)["captions"]["names"])
    if args.backend:
        names_cfg["backend"] = args.backend
    if args.model:
        names_cfg["model"] = args.model
    labels = read_labels(args.labels)
    captions = read_captions(args.source, labels)
    check = build_name_check(names_cfg)
    results = {}
    for name, rows in (
        ("all labelled rows", None),
        ("dev rows 0-499", range(0, 500)),
        ("held-out rows 500-999", range(500, 1000)),
    ):
        results[name] = measure(captions, labels, check, rows)
    print(f"name check: {names_cfg}\n")
    print(markdown(results))
    allrows = results["all labelled rows"]
    print()
    print(
        confusion_markdown(
            "People check, all rows (labelled people = depicted person, not NSFW):", allrows["people_check"], "people"
        )
    )
    print()
    print(
        confusion_markdown("Name check, rows that pass the people check:", allrows["name_check_people_rows"], "named")
    )
    print()
    print(confusion_markdown("Name check, all rows:", allrows["name_check_all_rows"], "named"))
    print(
        f"\nkept rows naming a person: {allrows['kept_named_rows']}; "
        f"people rows without a name that were dropped: {allrows['should_keep_missed_rows']}"
    )
    if args.json:
        args.json.write_text(json.dumps({"names": names_cfg, "results": results}, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "name-check",
        help="measure the people and name checks on hand-labelled LAION rows",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", type=Path, required=True, help="the LAION parquet the labels refer to")
    p.add_argument("--labels", type=Path, required=True, help="labels CSV (row, url_sha1, people, named, nsfw)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--backend", choices=["rules", "spacy", "gliner", "transformers"], default=None)
    p.add_argument("--model", default=None, help="captions.names.model for this run")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.set_defaults(func=_cli)
