"""The head-model format: FLAME's arrays plus a 68-point landmark embedding and named vertex sets.

On disk it is an ``.npz`` whose array names are FLAME's (``v_template``, ``shapedirs``,
``posedirs``, ``J_regressor``, ``weights``, ``kintree_table``, ``f``), plus ``lmk_faces_idx``,
``lmk_bary_coords``, ``subset_<name>``, ``region_<name>``, ``name`` and ``format_version``.
The zip is written with fixed timestamps and sorted members, so the same model gives the same
bytes.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

FORMAT_VERSION = 1
N_JOINTS = 5  # root, neck, jaw, left eye, right eye
N_COMPONENTS = 400  # 300 shape + 100 expression
N_POSE_FEATURES = 36  # 9 * (N_JOINTS - 1)
N_LANDMARKS = 68  # 17 contour + 51 static, iBUG order
FLAME_PARENTS = (-1, 0, 1, 1, 1)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class HeadModel:
    """A FLAME-layout head model (numpy). V vertices, F triangles.

    ``subsets`` are the vertex sets the losses and metrics use (at least ``face`` and ``head``,
    the paper's head without ears, eyes and neck); ``regions`` are optional named vertex sets for
    colouring (``scalp``, ``lips``, ``eyes``, ``ears``, ``neck``...), empty for FLAME without masks.
    """

    v_template: np.ndarray  # (V, 3) float32, metres; y up, z out of the face
    shapedirs: np.ndarray  # (V, 3, 400) float32; [..., :300] shape, [..., 300:] expression
    posedirs: np.ndarray  # (V, 3, 36) float32; pose correctives per (R_j - I) entry, joints 1..4
    J_regressor: np.ndarray  # (5, V) float32, dense
    weights: np.ndarray  # (V, 5) float32 skinning weights, rows sum to 1
    kintree_table: np.ndarray  # (2, 5) int64; row 0 parents (-1 for the root)
    faces: np.ndarray  # (F, 3) int64, counter-clockwise seen from outside
    lmk_faces: np.ndarray  # (68,) int64 triangle of each landmark
    lmk_bary: np.ndarray  # (68, 3) float32 barycentric coordinates in that triangle
    subsets: dict[str, np.ndarray] = field(default_factory=dict)  # name -> vertex indices (int64)
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # name -> vertex indices (int64)
    name: str = ""

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def parents(self) -> np.ndarray:
        return self.kintree_table[0]

    def landmarks_template(self) -> np.ndarray:
        """The 68 landmarks on the template, (68, 3)."""
        corners = self.v_template[self.faces[self.lmk_faces]]
        return np.einsum("lkc,lk->lc", corners, self.lmk_bary)

    def validate(self, source: str = "head model") -> "HeadModel":
        """Check shapes, dtypes and index ranges; cast to the canonical dtypes. Raises InputError."""
        V = self.v_template.shape[0] if self.v_template.ndim == 2 else -1
        expected = {
            "v_template": (V, 3),
            "shapedirs": (V, 3, N_COMPONENTS),
            "posedirs": (V, 3, N_POSE_FEATURES),
            "J_regressor": (N_JOINTS, V),
            "weights": (V, N_JOINTS),
            "kintree_table": (2, N_JOINTS),
            "lmk_faces": (N_LANDMARKS,),
            "lmk_bary": (N_LANDMARKS, 3),
        }
        for key, shape in expected.items():
            got = tuple(np.shape(getattr(self, key)))
            if got != shape:
                raise InputError(f"{source}: '{key}' has shape {got}, expected {shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise InputError(f"{source}: 'f' (faces) has shape {self.faces.shape}, expected (F, 3)")
        for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "lmk_bary"):
            setattr(self, key, np.ascontiguousarray(getattr(self, key), dtype=np.float32))
        for key in ("kintree_table", "faces", "lmk_faces"):
            setattr(self, key, np.ascontiguousarray(getattr(self, key), dtype=np.int64))
        if self.faces.min() < 0 or self.faces.max() >= V:
            raise InputError(f"{source}: faces index vertices outside 0..{V - 1}")
        if self.lmk_faces.min() < 0 or self.lmk_faces.max() >= len(self.faces):
            raise InputError(f"{source}: landmark faces index triangles outside 0..{len(self.faces) - 1}")
        for kind in ("subsets", "regions"):
            sets = getattr(self, kind)
            for key, idx in list(sets.items()):
                idx = np.asarray(idx, dtype=np.int64)
                if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= V)):
                    raise InputError(f"{source}: {kind[:-1]} '{key}' must be vertex indices in 0..{V - 1}")
                sets[key] = idx
        for key in ("face", "head"):
            if key not in self.subsets:
                raise InputError(f"{source}: vertex subset '{key}' is missing")
        return self


def save_head_model(model: HeadModel, path: str | os.PathLike) -> None:
    """Write ``model`` as our ``.npz`` atomically; the same model always gives the same bytes."""
    from ..io import atomic_path

    model.validate("head model to save")
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "name": np.array(model.name),
        "v_template": model.v_template,
        "shapedirs": model.shapedirs,
        "posedirs": model.posedirs,
        "J_regressor": model.J_regressor,
        "weights": model.weights,
        "kintree_table": model.kintree_table,
        "f": model.faces,
        "lmk_faces_idx": model.lmk_faces,
        "lmk_bary_coords": model.lmk_bary,
    }
    arrays.update({f"subset_{k}": v for k, v in model.subsets.items()})
    arrays.update({f"region_{k}": v for k, v in model.regions.items()})
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=1)


def _load_npz(path: Path) -> HeadModel:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"head model '{path}' is not a readable .npz: {exc}") from None
    with data:
        missing = [
            k
            for k in (
                "v_template",
                "shapedirs",
                "posedirs",
                "J_regressor",
                "weights",
                "kintree_table",
                "f",
                "lmk_faces_idx",
                "lmk_bary_coords",
            )
            if k not in data.files
        ]
        if missing:
            raise InputError(
                f"head model '{path}' lacks the arrays {', '.join(missing)} "
                "(build one with `vggheads build-head-model`)"
            )
        version = int(data["format_version"]) if "format_version" in data.files else FORMAT_VERSION
        if version > FORMAT_VERSION:
            raise InputError(
                f"head model '{path}' has format version {version}; this vggheads reads up to {FORMAT_VERSION}"
            )
        model = HeadModel(
            v_template=data["v_template"],
            shapedirs=data["shapedirs"],
            posedirs=data["posedirs"],
            J_regressor=data["J_regressor"],
            weights=data["weights"],
            kintree_table=data["kintree_table"],
            faces=data["f"],
            lmk_faces=data["lmk_faces_idx"],
            lmk_bary=data["lmk_bary_coords"],
            subsets={k[len("subset_") :]: data[k] for k in data.files if k.startswith("subset_")},
            regions={k[len("region_") :]: data[k] for k in data.files if k.startswith("region_")},
            name=str(data["name"]) if "name" in data.files else path.stem,
        )
    return model.validate(str(path))


def load_head_model(path: str | os.PathLike) -> HeadModel:
    """Load our ``.npz`` or a real FLAME ``generic_model.pkl`` (see :mod:`vggheads.headmodel.flame_pickle`)."""
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"head model '{path}' not found: build one with `vggheads build-head-model --out {path}` "
            "or point headmodel.flame in params.yaml at your FLAME generic_model.pkl"
        )
    if path.suffix == ".pkl":
        from .flame_pickle import load_flame

        return load_flame(path)
    return _load_npz(path)
