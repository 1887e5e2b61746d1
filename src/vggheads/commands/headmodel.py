"""``vggheads headmodel show``: draw a picture of a head model (the DAG builds the project's own
with the ``build_head_model`` stage, ``vggheads build-head-model``).

    vggheads headmodel show data/headmodel/head_model.npz --out docs/img/headmodel.png

The model is FLAME's format (see docs/headmodel.md); ``show`` also reads a FLAME
``generic_model.pkl``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def show(model_path: Path, out: Path, size: int = 360, seed: int = 0) -> None:
    """Draw ``model_path``: four views of the template, then random shapes, expressions and an open jaw."""
    import torch

    from ..geometry import N_EXPR, N_SHAPE, FlameLayer, landmarks
    from ..headmodel import load_head_model
    from ..headmodel.preview import grid_image, render_view, vertex_colours, yaw_matrix
    from ..io import atomic_path

    model = load_head_model(model_path)
    layer = FlameLayer(model)
    colours = vertex_colours(model)
    faces = model.faces
    gen = torch.Generator().manual_seed(seed)
    B = 4
    shape, expression, jaw = torch.zeros(B, N_SHAPE), torch.zeros(B, N_EXPR), torch.zeros(B, 3)
    shape[1] = 1.5 * torch.randn(N_SHAPE, generator=gen)  # a random identity
    shape[2] = 1.5 * torch.randn(N_SHAPE, generator=gen)
    expression[2] = 1.5 * torch.randn(N_EXPR, generator=gen)  # ... with a random expression
    expression[3, 0] = 2.5  # smile (for the procedural model)
    jaw[3, 0] = 0.3  # jaw open
    with torch.no_grad():
        verts = layer(shape, expression, jaw).numpy()
        lmk = landmarks(torch.from_numpy(verts), layer).numpy()
    v0 = verts[0]
    centre = 0.5 * (v0.min(0) + v0.max(0))
    extent = 0.55 * float((v0.max(0) - v0.min(0))[:2].max())
    kw = dict(size=size, centre=centre, extent=extent)
    views = [(0, 0, "front"), (40, 0, "yaw 40"), (-90, 0, "profile"), (160, -10, "back")]
    images = [render_view(v0, faces, colours, rotation=yaw_matrix(a, p), **kw) for a, p, _ in views]
    labels = [label for *_, label in views]
    images.append(render_view(v0, faces, colours, rotation=yaw_matrix(0, 0), points=lmk[0], **kw))
    labels.append("68 landmarks")
    for k, label in ((1, "random shape"), (2, "shape + expression"), (3, "smile + jaw open")):
        images.append(render_view(verts[k], faces, colours, rotation=yaw_matrix(25, 0), **kw))
        labels.append(label)
    with atomic_path(out) as tmp:
        grid_image(images, 4, labels).save(tmp, format="PNG")
    log.info("wrote %s", out)


def show_rig(model_path: Path, out: Path, size: int = 360) -> None:
    """Draw the rig: jaw skinning weights, the face and head subsets, the colour regions, the joints."""
    import numpy as np

    from ..headmodel import load_head_model
    from ..headmodel.preview import grid_image, render_view, vertex_colours, yaw_matrix
    from ..io import atomic_path

    model = load_head_model(model_path)
    v, faces = model.v_template + np.array([0.0, 0.0, 0.05]), model.faces
    centre = 0.5 * (v.min(0) + v.max(0))
    kw = dict(
        size=size, centre=centre, extent=0.55 * float((v.max(0) - v.min(0))[:2].max()), rotation=yaw_matrix(35, 0)
    )
    grey = np.full((model.n_vertices, 3), 0.8)
    jaw = model.weights[:, 2:3]
    jaw_colours = (1 - jaw) * grey + jaw * np.array([0.85, 0.2, 0.15])
    subset = lambda name: np.where(
        np.isin(np.arange(model.n_vertices), model.subsets[name])[:, None], np.array([0.2, 0.55, 0.85]), grey
    )
    joints = model.J_regressor @ v
    images = [
        render_view(v, faces, jaw_colours, **kw),
        render_view(v, faces, subset("face"), **kw),
        render_view(v, faces, subset("head"), **kw),
        render_view(v, faces, vertex_colours(model), points=joints, **dict(kw, rotation=yaw_matrix(-90, 0))),
    ]
    labels = ["jaw skinning weight", "subset 'face'", "subset 'head'", "regions; joints (red)"]
    with atomic_path(out) as tmp:
        grid_image(images, 4, labels).save(tmp, format="PNG")
    log.info("wrote %s", out)


def _cli_show(args: argparse.Namespace) -> int:
    show(args.model, args.out, size=args.size, seed=args.seed)
    if args.rig:
        show_rig(args.model, args.rig, size=args.size)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "headmodel",
        help="build the procedural head model, or draw one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="headmodel_command", metavar="ACTION", required=True)
    s = cmds.add_parser("show", help="draw a head model (views, landmarks, random shapes and expressions) to a PNG")
    s.add_argument("model", type=Path, help="head model: our .npz or FLAME's generic_model.pkl")
    s.add_argument("--out", type=Path, required=True, help="output PNG")
    s.add_argument("--size", type=int, default=360, help="pixels per view")
    s.add_argument("--seed", type=int, default=0, help="seed of the random shapes and expressions drawn")
    s.add_argument(
        "--rig", type=Path, default=None, help="also draw the rig (jaw weights, subsets, regions, joints) to this PNG"
    )
    s.set_defaults(func=_cli_show)
