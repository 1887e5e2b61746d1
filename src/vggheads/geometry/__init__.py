"""Geometry core: the 413-value parameter vector, rotations and pose angles, linear blend
skinning, the canonical head layer, projection and landmarks (paper section 2).

Torch functions work on batches; shapes are in each docstring.
"""

from .layer import CANONICAL_Z_OFFSET, FlameLayer
from .lbs import batch_rigid_transform, blend_shapes, lbs, pose_features, pose_offsets, skin, vertices2joints
from .params import (
    EXPRESSION,
    JAW,
    LAYOUT,
    N_EXPR,
    N_JAW,
    N_PARAMS,
    N_ROT6D,
    N_SCALE,
    N_SHAPE,
    N_TRANSLATION,
    ROT6D,
    SCALE,
    SHAPE,
    TRANSLATION,
    FlameParams,
    join_params,
    split_params,
)
from .projection import DecodedHeads, decode, landmarks, project
from .rotations import FRONTAL, angles_to_matrix, batch_rodrigues, matrix_to_angles, matrix_to_rot6d, rot6d_to_matrix

__all__ = [
    "CANONICAL_Z_OFFSET",
    "EXPRESSION",
    "FRONTAL",
    "JAW",
    "LAYOUT",
    "N_EXPR",
    "N_JAW",
    "N_PARAMS",
    "N_ROT6D",
    "N_SCALE",
    "N_SHAPE",
    "N_TRANSLATION",
    "ROT6D",
    "SCALE",
    "SHAPE",
    "TRANSLATION",
    "DecodedHeads",
    "FlameLayer",
    "FlameParams",
    "angles_to_matrix",
    "batch_rigid_transform",
    "batch_rodrigues",
    "blend_shapes",
    "decode",
    "join_params",
    "landmarks",
    "lbs",
    "matrix_to_angles",
    "matrix_to_rot6d",
    "pose_features",
    "pose_offsets",
    "project",
    "rot6d_to_matrix",
    "skin",
    "split_params",
    "vertices2joints",
]
