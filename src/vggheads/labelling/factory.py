"""Build the labeller named in params.yaml (``labels.labeller``)."""

from __future__ import annotations

from ..errors import ConfigError

LABELLERS = ("truth", "dad3dnet", "model", "landmark-fit", "vggheads")


def build_labeller(name: str, cfg: dict, head_model=None, truth: dict | None = None, head_model_path=None):
    """``cfg`` is the ``labels`` section; ``head_model`` a HeadModel (landmark-fit); ``truth`` the
    render truth by sample id (truth); ``head_model_path`` the head-model file (model, vggheads)."""
    if name == "truth":
        from .truth import TruthLabeller

        if truth is None:
            raise ConfigError(
                "labels.labeller 'truth' needs the exact truth of procedural renders (render.backend: procedural)"
            )
        return TruthLabeller(truth, cfg["match_iou"])
    if name == "dad3dnet":
        from .dad3dnet import Dad3dNetLabeller

        c = cfg["dad3dnet"]
        return Dad3dNetLabeller(
            c["weights"], img_size=c["img_size"], device=cfg["device"], batch_size=cfg["batch_size"]
        )
    if name == "model":
        from .model_labeller import ModelLabeller

        return ModelLabeller(
            cfg["model"]["weights"],
            cfg["match_iou"],
            device=cfg["device"],
            min_score=cfg["model"]["min_score"],
            head_model=head_model_path,
        )
    if name == "landmark-fit":
        return landmark_fitter(cfg, head_model)
    if name == "vggheads":  # the paper's released model (docs/release.md)
        from .vggheads import VggheadsLabeller

        c = cfg["vggheads"]
        return VggheadsLabeller(
            c["weights"],
            head_model_path,
            cfg["match_iou"],
            device=cfg["device"],
            min_score=c["min_score"],
            channels=c.get("channels", "rgb"),
        )
    raise ConfigError(f"labels.labeller '{name}' is unknown (known: {', '.join(LABELLERS)})")


def landmark_fitter(cfg: dict, head_model):
    """The landmark-fit labeller from ``labels.landmark_fit`` (also used to refine other labellers)."""
    from .landmark_fit import LandmarkFitLabeller

    c = cfg["landmark_fit"]
    return LandmarkFitLabeller(
        head_model,
        n_shape=c["n_shape"],
        n_expr=c["n_expr"],
        prior_weight=c["prior_weight"],
        contour_weight=c["contour_weight"],
        predictor=c["predictor"],
    )
