"""The 413-value head parameter vector's layout, in the paper's order (paper section 2).

``shape 300 | expression 100 | jaw 3 (axis-angle) | rotation 6 (6D) | translation 3 | scale 1``.
Only this order is authoritative: the paper's code lists rotation before jaw in some places, but
its decoder (``from_3dmm``) reads jaw first, and so do we. Image-pixel convention:
``v_img = scale * (R v) + translation``. Torch-free; the split/join helpers live in
:mod:`vggheads.geometry.params`.
"""

from __future__ import annotations

N_SHAPE = 300
N_EXPR = 100
N_JAW = 3
N_ROT6D = 6
N_TRANSLATION = 3
N_SCALE = 1
N_PARAMS = N_SHAPE + N_EXPR + N_JAW + N_ROT6D + N_TRANSLATION + N_SCALE  # 413

SHAPE = slice(0, 300)
EXPRESSION = slice(300, 400)
JAW = slice(400, 403)
ROT6D = slice(403, 409)
TRANSLATION = slice(409, 412)
SCALE = slice(412, 413)
SCALE_INDEX = SCALE.start  # params[..., SCALE_INDEX]: the scale as a scalar per head

# name -> slice, in vector order
LAYOUT = {
    "shape": SHAPE,
    "expression": EXPRESSION,
    "jaw": JAW,
    "rot6d": ROT6D,
    "translation": TRANSLATION,
    "scale": SCALE,
}
assert SCALE.stop == N_PARAMS

N_LANDMARKS = 68  # the 68-point landmark scheme (iBUG / 300W) every head carries
