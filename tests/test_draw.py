"""Drawing truth over images: the viz primitives and the ``vggheads draw`` command."""

from __future__ import annotations

import numpy as np
import pytest

from vggheads import viz


def test_a_box_is_drawn_just_outside_its_pixels():
    img = np.zeros((40, 40, 3), np.uint8)
    viz.draw_box(img, [10, 12, 20, 25], (255, 0, 0))
    assert np.all(img[12:25, 10:20] == 0), "nothing inside the box is covered"
    assert np.all(img[11, 9:21, 0] == 255) and np.all(img[25, 9:21, 0] == 255)  # top and bottom rows
    assert np.all(img[11:26, 9, 0] == 255) and np.all(img[11:26, 20, 0] == 255)  # left and right columns
    assert img[5, 5].sum() == 0


def test_visible_and_occluded_landmarks_look_different():
    img = np.zeros((60, 60, 3), np.uint8)
    lm = np.array([[15.5, 15.5, 1.0], [45.5, 45.5, 0.0]])
    viz.draw_landmarks(img, lm, radius=2.0, lines=False)
    # visible: a filled green dot centred on the point
    assert tuple(img[15, 15]) == viz.VISIBLE
    # occluded: a hollow red ring: the centre stays empty, the ring is red
    assert img[45, 45].sum() == 0
    ring = img[40:51, 40:51]
    assert (ring[..., 0] > 100).sum() > 8 and (ring[..., 1] > 100).sum() == 0


def test_wireframe_draws_front_faces_only_and_axes_point_along_the_rotation():
    img = np.zeros((50, 50, 3), np.uint8)
    front = np.array([[10, 10, 0], [10, 40, 0], [40, 10, 0]], float)  # normal -z: faces the camera
    viz.draw_wireframe(img, front, np.array([[0, 1, 2]]), color=(255, 255, 255), alpha=1.0)
    assert img.sum() > 0
    back = np.zeros((50, 50, 3), np.uint8)
    viz.draw_wireframe(back, front, np.array([[0, 2, 1]]), color=(255, 255, 255), alpha=1.0)
    assert back.sum() == 0
    axes = np.zeros((80, 80, 3), np.uint8)
    viz.draw_axes(axes, np.diag([1.0, -1.0, -1.0]), (40, 40), 30)  # frontal: x right, y up
    assert tuple(axes[40, 60]) == viz.AXES[0]  # red to the right
    assert tuple(axes[20, 40]) == viz.AXES[1]  # green upwards


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, head_model):
    """A tiny procedural render on disk: an image dir, its heads table and the head model."""
    from PIL import Image

    from vggheads.headmodel import save_head_model
    from vggheads.render.procedural import ProceduralRenderer
    from vggheads.render.truth_rows import head_rows
    from vggheads.schemas import from_rows, write_table

    tmp = tmp_path_factory.mktemp("draw")
    model = head_model
    save_head_model(model, tmp / "head.npz")
    kp = np.zeros((17, 3))
    kp[:5] = [[64, 60, 0.9], [72, 50, 0.9], [56, 50, 0.9], [82, 56, 0.9], [46, 56, 0.9]]
    kp[5:7] = [[100, 110, 0.9], [28, 110, 0.9]]
    result = ProceduralRenderer(model, {"supersample": 1}).render([(0, kp)], 128, 128, seed=3)
    (tmp / "00000").mkdir()
    Image.fromarray(result.image).save(tmp / "00000" / "s1.png")
    rows = head_rows("s1", result.heads)
    write_table(from_rows("render_heads", rows), tmp / "00000.heads.parquet", "render_heads")
    return tmp, result


def test_the_draw_command_overlays_a_shard(rendered):
    from PIL import Image

    from vggheads.cli import main

    tmp, result = rendered
    out = tmp / "overlays"
    assert (
        main(["draw", str(tmp / "00000"), "--out", str(out), "--head-model", str(tmp / "head.npz"), "--scale", "2"])
        == 0
    )
    over = np.asarray(Image.open(out / "00000" / "s1.png"))
    assert over.shape == (256, 256, 3)
    src = np.repeat(np.repeat(result.image, 2, 0), 2, 1)
    changed = np.any(over != src, axis=2)
    x1, y1, x2, y2 = (np.asarray(result.heads[0].box) * 2).astype(int)
    assert changed[y1 - 1, x1:x2].mean() > 0.9  # the box outline (just above the box)
    assert changed[y1:y2, x1:x2].mean() > 0.2  # mesh and landmarks over the head
    assert changed[:, : max(x1 - 30, 1)].sum() < 50  # not much drawn far from the head (the label is above)


def test_draw_one_image_without_a_head_model_and_a_bad_item_is_an_error(rendered, tmp_path):
    from vggheads.cli import main
    from vggheads.render.truth_overlays import draw

    tmp, _ = rendered
    target = tmp_path / "one.png"
    written = draw(tmp / "00000" / "s1.png", target, what=("box", "landmarks"), factor=1)
    assert written == [target] and target.exists()
    assert main(["draw", str(tmp / "00000"), "--what", "box,feet", "--out", str(tmp_path)]) == 2
