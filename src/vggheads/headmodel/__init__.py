"""Head models in FLAME's format: our own procedural model, or the user's FLAME file.

from vggheads.headmodel import build_head_model, load_head_model, save_head_model
model = load_head_model("data/headmodel/head_model.npz")   # or .../generic_model.pkl
"""

from .format import FORMAT_VERSION, HeadModel, load_head_model, save_head_model

__all__ = ["FORMAT_VERSION", "HeadModel", "build_head_model", "load_head_model", "save_head_model"]


def build_head_model(seed: int = 0) -> HeadModel:
    """The project's procedural head model (see :mod:`vggheads.headmodel.builder`)."""
    from .builder import build_head_model as _build

    return _build(seed)
