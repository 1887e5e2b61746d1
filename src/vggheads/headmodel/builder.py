"""The project's own open head model, built procedurally in FLAME's format.

Why: FLAME cannot be redistributed, yet every stage needs a head model. This one has FLAME's
layout (300 shape + 100 expression components, 36 pose correctives, 5 joints: root, neck, jaw,
left eye, right eye), scale (metres) and frame (y up, z out of the face), about 5,000 vertices
and 10,000 triangles, so code and benchmarks written against it run unchanged on FLAME.

How, in four steps (all in the "design" frame: origin between the ear canals; the template is
shifted by -0.05 on z so that the paper's +0.05 brings the head centre back to the origin):

1. :mod:`.surface`: the surface is a signed-distance field (skull, face, jaw, chin, nose, brows,
   cheekbones, lips, neck; eye sockets with almond-shaped lid openings carved in). A
   latitude-longitude grid of rays from a point inside the head finds the surface, so the mesh is
   a clean quad grid, denser on the face; the mouth is a slit in the grid.
2. :mod:`.surface`: separate closed parts: two eyeballs, two ears and a mouth cavity.
3. :mod:`.rig`: smooth skinning weights (lower face on the jaw), a joint regressor (weighted
   vertex averages), the kinematic tree, the 68-landmark embedding in iBUG order (grid triangles +
   barycentric coordinates), vertex subsets (face, head) and colour regions.
4. :mod:`.components`: shape = a few anatomical modes then random smooth fields, coarse to fine,
   mostly left-right symmetric; expression = semantic face modes then random smooth fields masked
   to the face; each set orthonormalised and scaled by a decreasing standard deviation; pose
   correctives. The seed drives only the random fields; the template and rig are fixed.

This module assembles them into a :class:`~vggheads.headmodel.format.HeadModel`.
"""

from __future__ import annotations

import numpy as np

from .components import expression_components, pose_correctives, shape_components
from .format import HeadModel
from .rig import joint_regressor, kinematic_tree, landmark_embedding, skinning_weights, vertex_sets
from .surface import Mesh, build_mesh

TEMPLATE_SHIFT = np.array([0.0, 0.0, -0.05])  # design frame -> template frame (undone by the paper's +0.05)

_MESH_CACHE: list[Mesh] = []


def _template_mesh() -> Mesh:
    """The seed-independent template (built once per process: a few seconds)."""
    if not _MESH_CACHE:
        _MESH_CACHE.append(build_mesh())
    return _MESH_CACHE[0]


def build_head_model(seed: int = 0) -> HeadModel:
    """Build the procedural head model; the same seed gives the same arrays (and file bytes)."""
    mesh = _template_mesh()
    rng = np.random.default_rng([seed, 0x68656164])  # "head"
    lmk_faces, lmk_bary = landmark_embedding(mesh)
    subsets, regions = vertex_sets(mesh, lmk_faces, lmk_bary)
    shapedirs = np.concatenate([shape_components(mesh, rng), expression_components(mesh, rng)], axis=2)
    model = HeadModel(
        v_template=mesh.vertices + TEMPLATE_SHIFT,
        shapedirs=shapedirs,
        posedirs=pose_correctives(mesh, rng),
        J_regressor=joint_regressor(mesh),
        weights=skinning_weights(mesh),
        kintree_table=kinematic_tree(),
        faces=mesh.faces,
        lmk_faces=lmk_faces,
        lmk_bary=lmk_bary,
        subsets=subsets,
        regions=regions,
        name=f"vggheads procedural head v1 (seed {seed})",
    )
    return model.validate("procedural head model")
