"""Keep every library offline and quiet; call :func:`configure` before importing any of them.

Hugging Face, ultralytics and MLflow each try the network by default (update checks, telemetry, a
font download), and onnxruntime's native code sends telemetry (a DNS query for an events host)
that no Python-level guard sees. Weights come from local paths only; see the README.
tests/test_e2e.py runs the whole DAG under strace and fails on any connection to another host.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_DATASETS_OFFLINE": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime's native telemetry (read when it starts)
    "TQDM_MININTERVAL": "1",
}

_configured = False


def ultralytics_config_dir() -> Path:
    """Where ultralytics keeps its settings and the font it would otherwise download."""
    from .config import REPO_ROOT

    return Path(os.environ.get("YOLO_CONFIG_DIR", REPO_ROOT / ".vggheads" / "ultralytics"))


def configure() -> None:
    """Set the offline switches of every library (existing environment values win)."""
    global _configured
    if _configured:
        return
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import sys

    if "onnxruntime" in sys.modules:  # imported before us: switch its telemetry off the other way
        sys.modules["onnxruntime"].disable_telemetry_events()
    cfg = ultralytics_config_dir()
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cfg))
    font_dir = cfg / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    font = font_dir / "Arial.ttf"
    if not font.exists():
        # ultralytics downloads Arial.ttf on first plot unless a font is there; matplotlib ships DejaVu.
        import matplotlib

        dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        tmp = font.with_name(f".Arial.{os.getpid()}.tmp")  # jobs starting together each write their own
        shutil.copyfile(dejavu, tmp)
        os.replace(tmp, font)
    settings = font_dir / "settings.json"
    # Only keys ultralytics knows: it rewrites the file (and says so) when it meets others.
    wanted = {
        "sync": False,
        "mlflow": False,
        "clearml": False,
        "comet": False,
        "dvc": False,
        "raytune": False,
        "tensorboard": False,
        "wandb": False,
        "vscode_msg": False,
        "openvino_msg": False,
        # stray run/weight/dataset folders go under the config dir, never into the repository
        "runs_dir": str(cfg / "runs"),
        "weights_dir": str(cfg / "weights"),
        "datasets_dir": str(cfg / "datasets"),
    }
    current = json.loads(settings.read_text()) if settings.exists() else {}
    if any(current.get(k) != v for k, v in wanted.items()):
        current.update(wanted)
        tmp = settings.with_name(f".settings.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current, indent=2))
        os.replace(tmp, settings)
    _configured = True


def import_ultralytics():
    """Import ultralytics with its network features off (settings re-applied after import)."""
    configure()
    import ultralytics
    from ultralytics.utils import SETTINGS

    SETTINGS.update(
        {
            "sync": False,
            "mlflow": False,
            "dvc": False,
            "tensorboard": False,
            "wandb": False,
            "clearml": False,
            "comet": False,
            "raytune": False,
        }
    )
    # ultralytics patches PIL.Image.open to pip-install a HEIF plugin when PIL cannot identify a
    # file: a corrupt image would then try the network instead of raising. Restore PIL's own.
    from PIL import Image
    from ultralytics.utils import patches

    if getattr(patches, "_image_open", None) is not None:
        Image.open = patches._image_open
    return ultralytics
