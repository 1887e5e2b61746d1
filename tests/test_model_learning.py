"""Learning is real: a short CPU training from scratch on 64 procedural images finds the heads of images
it never saw (AP50 >= 0.8) and beats the untrained network in landmarks (68-point NME).

The figures of a run are printed (``pytest -s``) and written by the stage to its metrics JSON.
"""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_short_training_beats_the_untrained_network_on_held_out_images(params, tmp_path_factory, tmp_path):
    from vggheads.model.toydata import toy_dataset
    from vggheads.stages.train import TrainJob, train

    head, images, heads = toy_dataset(
        tmp_path_factory.getbasetemp() / "vggheads-model-toy", n_train=64, n_val=16, size=160, seed=1
    )
    p = json.loads(json.dumps(params))
    p["model"].update(imgsz=160, n_shape=16, n_expr=8)
    # from scratch: this test is about the network and its losses learning, not the head detector's start
    p["train"].update(epochs=20, batch=4, init="scratch")
    p["tracking"]["enabled"] = False
    metrics = train(
        p,
        TrainJob(
            images=images,
            heads=heads,
            head_model=head,
            out_dir=tmp_path / "model",
            metrics=tmp_path / "train.json",
            plots=tmp_path / "plots",
            work_dir=tmp_path / "model" / ".work",
        ),
    )
    val, untrained = metrics["val"], metrics["untrained"]
    print("\nheld-out:", json.dumps({"trained": val, "untrained": untrained}, indent=1))
    assert metrics["val_split"] == "val" and metrics["val_images"] == 16
    # detection: the untrained network finds nothing at IoU 0.5
    assert untrained["ap50"] < 0.05 and val["ap50"] >= 0.8
    assert val["matched"] >= 0.8 > untrained["matched"]
    # landmarks where the heads are (defined for both networks) and on the detections
    assert val["nme68_anchor_pct"] < 0.5 * untrained["nme68_anchor_pct"]
    assert val["nme68_pct"] is not None and val["nme68_pct"] < 40.0  # percent of the head box's size
