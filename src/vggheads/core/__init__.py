"""The floor every area of the package stands on: plain numpy, no torch, no other vggheads module
(except :mod:`vggheads.errors`).

- :mod:`.param_layout`: the 413-value parameter vector's layout and its named slices;
- :mod:`.boxes`: box formats, IoU, extents;
- :mod:`.metrics`: Hungarian matching of heads, NME (one unit: percent) and the failure rate;
- :mod:`.images`: the one RGB image reader;
- :mod:`.rotmat`: the 6D rotation representation and the paper's yaw/pitch/roll (as :mod:`vggheads.geometry.rotations`);
- :mod:`.similarity`: a 2D similarity of the image applied to parameter vectors, points and boxes;
- :mod:`.fitting`: the head model fitted to 68 image landmarks (pose, shape, expression).

Geometry (torch), labelling, filtering, detection, the model and evaluation import from here,
never from each other for these.
"""
