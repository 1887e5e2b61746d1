"""Read the real FLAME ``generic_model.pkl`` without chumpy, plus its landmark embedding.

FLAME's pickle stores ``v_template``, ``shapedirs``, ``posedirs`` and ``weights`` as chumpy ``Ch``
objects and ``J_regressor`` as a scipy sparse matrix, written by Python 2. The unpickler below
maps every chumpy and scipy.sparse class to a small stand-in that only keeps the pickled state,
then turns those into plain numpy arrays. Nothing from chumpy is imported.

The 68 landmarks come from files next to the model, in this order of preference:

* ``landmark_embedding.npy`` (DECA's: ``full_lmk_faces_idx`` / ``full_lmk_bary_coords``), or
* ``flame_static_embedding.pkl`` (51 static points) with ``flame_dynamic_embedding.npy``
  (17 contour points per yaw; the zero-yaw row is used).

Vertex subsets come from ``FLAME_masks.pkl`` when present (face; head = everything but ears,
eyeballs, neck and boundary), with ``face.npy`` / ``head_indices.npy`` (head_detector's assets)
taking precedence; without either, a geometric fallback is used and logged.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

from ..errors import InputError
from .format import N_COMPONENTS, HeadModel

log = logging.getLogger(__name__)

LANDMARK_HELP = (
    "put FLAME's landmark embedding next to it: flame_static_embedding.pkl and "
    "flame_dynamic_embedding.npy (from RingNet / FLAME_PyTorch) or DECA's landmark_embedding.npy"
)


class _PickledState:
    """Stand-in for any chumpy or scipy.sparse object: keeps the class name and the pickled state."""

    _class_name = "?"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):  # pragma: no cover - stand-ins are never pickled again
        raise TypeError("a chumpy/scipy stand-in cannot be pickled")


_STANDINS: dict[tuple[str, str], type] = {}


def _standin(module: str, name: str) -> type:
    key = (module, name)
    if key not in _STANDINS:
        _STANDINS[key] = type(name, (_PickledState,), {"_class_name": f"{module}.{name}"})
    return _STANDINS[key]


class ChumpyFreeUnpickler(pickle.Unpickler):
    """An unpickler that never imports chumpy or scipy.sparse (their module paths changed over versions)."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "chumpy" or module.startswith("scipy.sparse"):
            return _standin(module, name)
        return super().find_class(module, name)


def _state_dict(obj: _PickledState) -> dict:
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
        state = {**(state[0] or {}), **state[1]}  # (dict, slots) form
    if not isinstance(state, dict):
        raise InputError(f"cannot read a pickled {obj._class_name}: unexpected state {type(state).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in state.items()}


def _sparse_to_dense(obj: _PickledState) -> np.ndarray:
    d = _state_dict(obj)
    shape = tuple(int(s) for s in d.get("_shape", d.get("shape")))
    fmt = obj._class_name.rsplit(".", 1)[-1][:3]
    dense = np.zeros(shape, dtype=np.float64)
    if fmt in ("csc", "csr"):
        data, indices, indptr = (np.asarray(d[k]) for k in ("data", "indices", "indptr"))
        for major in range(len(indptr) - 1):
            sl = slice(indptr[major], indptr[major + 1])
            if fmt == "csc":
                dense[indices[sl], major] += data[sl]
            else:
                dense[major, indices[sl]] += data[sl]
    elif fmt == "coo":
        np.add.at(dense, (np.asarray(d["row"]), np.asarray(d["col"])), np.asarray(d["data"]))
    else:
        raise InputError(f"unsupported sparse matrix type {obj._class_name} in the FLAME pickle")
    return dense


def to_array(obj) -> np.ndarray:
    """A chumpy/scipy stand-in or array-like -> numpy array."""
    if isinstance(obj, _PickledState):
        if obj._class_name.startswith("scipy.sparse"):
            return _sparse_to_dense(obj)
        d = _state_dict(obj)
        if "x" in d:  # chumpy.ch.Ch keeps its value in .x
            return to_array(d["x"])
        raise InputError(
            f"cannot read a pickled {obj._class_name} (no value 'x'); re-save the model with plain numpy arrays"
        )
    return np.asarray(obj)


def read_pickle(path: Path):
    """Unpickle a FLAME-era file (Python 2 pickles need latin1) without chumpy."""
    with open(path, "rb") as f:
        try:
            return ChumpyFreeUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise InputError(f"'{path}' is not a readable FLAME pickle: {exc}") from None


def _load_landmarks(directory: Path, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    deca = directory / "landmark_embedding.npy"
    static = directory / "flame_static_embedding.pkl"
    dynamic = directory / "flame_dynamic_embedding.npy"
    if deca.exists():
        emb = np.load(deca, allow_pickle=True, encoding="latin1")[()]
        lmk_faces = np.asarray(emb["full_lmk_faces_idx"]).reshape(-1)
        lmk_bary = np.asarray(emb["full_lmk_bary_coords"]).reshape(-1, 3)
    elif static.exists() and dynamic.exists():
        s = read_pickle(static)
        d = np.load(dynamic, allow_pickle=True, encoding="latin1")[()]
        # row 0 of the dynamic contour is yaw 0 (smplx's find_dynamic_lmk_idx_and_bcoords)
        lmk_faces = np.concatenate([np.asarray(d["lmk_face_idx"])[0], np.asarray(s["lmk_face_idx"]).reshape(-1)])
        lmk_bary = np.concatenate([np.asarray(d["lmk_b_coords"])[0], np.asarray(s["lmk_b_coords"]).reshape(-1, 3)])
    else:
        raise InputError(f"FLAME landmark embedding not found in '{directory}': {LANDMARK_HELP}")
    if lmk_faces.shape != (68,) or lmk_faces.max() >= len(faces):
        raise InputError(f"FLAME landmark embedding in '{directory}' does not give 68 valid triangles")
    return lmk_faces.astype(np.int64), lmk_bary.astype(np.float32)


def _load_subsets(directory: Path, model: dict) -> tuple[dict, dict]:
    """(subsets, regions) for FLAME from files next to the model, or a geometric fallback."""
    subsets, regions = {}, {}
    masks_path = directory / "FLAME_masks.pkl"
    if masks_path.exists():
        masks = {k: np.asarray(v, dtype=np.int64) for k, v in read_pickle(masks_path).items()}
        regions = {k: v for k, v in masks.items() if k != "boundary"}
        excluded = np.concatenate(
            [
                masks[k]
                for k in ("left_ear", "right_ear", "left_eyeball", "right_eyeball", "neck", "boundary")
                if k in masks
            ]
        )
        subsets = {"face": masks["face"], "head": np.setdiff1d(np.arange(len(model["v_template"])), excluded)}
    for name, filename in (("face", "face.npy"), ("head", "head_indices.npy")):
        if (directory / filename).exists():
            subsets[name] = np.load(directory / filename).astype(np.int64).reshape(-1)
    if "face" not in subsets or "head" not in subsets:
        log.warning(
            "FLAME vertex masks not found next to the model (FLAME_masks.pkl, or face.npy and "
            "head_indices.npy): using a geometric estimate of the face and head subsets"
        )
        v = model["v_template"]
        weights = model["weights"]
        main = weights[:, [0, 1, 2]].sum(1) > 0.5  # not eyeballs
        lmk = model["_landmarks"]
        y_lo, y_hi = lmk[:, 1].min(), lmk[:, 1].max() + 0.03  # chin to forehead
        x_lim = np.abs(lmk[:17, 0]).max()
        subsets.setdefault(
            "face",
            np.flatnonzero(
                main
                & (v[:, 1] >= y_lo)
                & (v[:, 1] <= y_hi)
                & (np.abs(v[:, 0]) <= x_lim)
                & (v[:, 2] > lmk[:, 2].min() - 0.01)
            ),
        )
        subsets.setdefault("head", np.flatnonzero(main & (v[:, 1] >= y_lo) & (np.abs(v[:, 0]) <= x_lim + 0.005)))
    return subsets, regions


def load_flame(path: Path) -> HeadModel:
    """Read FLAME's ``generic_model.pkl`` (and its landmark embedding next to it) as a HeadModel."""
    raw = read_pickle(path)
    if not isinstance(raw, dict):
        raise InputError(f"'{path}' does not hold a FLAME model dictionary")
    raw = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    missing = [
        k
        for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
        if k not in raw
    ]
    if missing:
        raise InputError(f"'{path}' lacks the FLAME keys {', '.join(missing)}")
    arr = {
        k: to_array(raw[k])
        for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    }
    V = arr["v_template"].shape[0]
    shapedirs = arr["shapedirs"].reshape(V, 3, -1)
    if shapedirs.shape[2] < N_COMPONENTS:  # older releases with fewer components: pad with zeros
        log.warning("%s has %d blend shapes; padding to %d with zeros", path, shapedirs.shape[2], N_COMPONENTS)
        shapedirs = np.concatenate([shapedirs, np.zeros((V, 3, N_COMPONENTS - shapedirs.shape[2]))], axis=2)
    kintree = arr["kintree_table"].astype(np.int64)
    kintree[0, 0] = -1  # FLAME stores the root's parent as 2**32 - 1
    faces = arr["f"].astype(np.int64)
    lmk_faces, lmk_bary = _load_landmarks(path.parent, faces)
    corners = arr["v_template"][faces[lmk_faces]]
    arr["_landmarks"] = np.einsum("lkc,lk->lc", corners, lmk_bary)
    subsets, regions = _load_subsets(path.parent, arr)
    model = HeadModel(
        v_template=arr["v_template"],
        shapedirs=shapedirs[:, :, :N_COMPONENTS],
        posedirs=arr["posedirs"].reshape(V, 3, -1),
        J_regressor=arr["J_regressor"],
        weights=arr["weights"],
        kintree_table=kintree,
        faces=faces,
        lmk_faces=lmk_faces,
        lmk_bary=lmk_bary,
        subsets=subsets,
        regions=regions,
        name=f"FLAME ({path.name})",
    )
    return model.validate(str(path))
