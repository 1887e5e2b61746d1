"""The moderngl/EGL rasteriser: coverage, depth test, PNCC, ids, normals, errors."""

import numpy as np
import pytest

from vggheads.render import raster
from vggheads.render.raster import Mesh, box_mesh, get_rasterizer, icosphere


def _inside(tri: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel centres strictly inside the 2D triangle ``tri`` (3, 2): (H, W) bool (reference)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    p = np.stack([xs, ys], -1)

    def edge(a, b):
        return (b[0] - a[0]) * (p[..., 1] - a[1]) - (b[1] - a[1]) * (p[..., 0] - a[0])

    e = [edge(tri[0], tri[1]), edge(tri[1], tri[2]), edge(tri[2], tri[0])]
    return ((e[0] > 0) & (e[1] > 0) & (e[2] > 0)) | ((e[0] < 0) & (e[1] < 0) & (e[2] < 0))


def test_triangle_covers_exactly_the_pixels_whose_centre_is_inside():
    tri = np.array([[10.2, 7.3, 3.0], [53.7, 12.9, 3.0], [21.1, 41.6, 3.0]])
    frame = get_rasterizer().render([Mesh(tri, np.array([[0, 1, 2]]), colors=(1.0, 0.0, 0.0), instance=7)], 64, 48)
    expected = _inside(tri[:, :2], 64, 48)
    assert expected.sum() > 500
    assert np.array_equal(frame.instance == 7, expected)
    assert set(np.unique(frame.instance)) == {0, 7}
    assert np.all(frame.face[expected] == 0) and np.all(frame.face[~expected] == -1)
    assert np.all(np.isinf(frame.depth[~expected])) and np.allclose(frame.depth[expected], 3.0)
    # red albedo stays red; the background stays black
    assert np.all(frame.color[expected][:, 0] > 100) and np.all(frame.color[expected][:, 1:] == 0)
    assert np.all(frame.color[~expected] == 0)


def test_cube_renders_its_projected_rectangle_with_the_front_face_facing_the_camera():
    v, f = box_mesh((20, 10, 5), (40, 35, 30))
    frame = get_rasterizer().render([Mesh(v, f, colors=(0.5, 0.5, 0.5), instance=1)], 64, 48)
    expected = np.zeros((48, 64), bool)
    expected[10:35, 20:40] = True
    assert np.array_equal(frame.instance == 1, expected)
    # the nearest face is z = 5 (smaller z is nearer); its normal points at the camera (-z)
    assert np.allclose(frame.depth[expected], 5.0)
    assert np.allclose(frame.facing[expected], -1.0)


@pytest.mark.parametrize("near_first", [True, False])
def test_depth_test_keeps_the_nearer_surface_whatever_the_draw_order(near_first):
    quad = np.array([[0, 1, 2], [0, 2, 3]])

    def square(x0, y0, size, z):
        return np.array([[x0, y0, z], [x0 + size, y0, z], [x0 + size, y0 + size, z], [x0, y0 + size, z]], float)

    near = Mesh(square(10, 10, 30, 2.0), quad, colors=(0, 1, 0), instance=1)
    far = Mesh(square(25, 20, 30, 9.0), quad, colors=(0, 0, 1), instance=2)
    meshes = [near, far] if near_first else [far, near]
    frame = get_rasterizer().render(meshes, 64, 64)
    assert np.all(frame.instance[10:40, 10:40] == 1)  # the near square is whole
    assert np.all(frame.instance[40:50, 25:55] == 2)  # the far one shows below it
    assert np.all(frame.instance[20:40, 40:55] == 2)
    assert np.allclose(frame.depth[20:40, 25:40], 2.0)  # overlap: the near depth
    assert np.all(frame.color[20:40, 25:40, 1] > 0) and np.all(frame.color[20:40, 25:40, 2] == 0)


def test_pncc_interpolates_the_template_coordinates_at_pixel_centres():
    tri = np.array([[5.3, 4.1, 1.0], [60.2, 9.7, 4.0], [14.9, 44.4, 7.0]])
    # template coordinates: an arbitrary affine map of the image position (what a mesh gives per vertex)
    A = np.array([[0.011, -0.004], [0.002, 0.013], [-0.007, 0.005]])
    b = np.array([0.1, -0.2, 0.3])
    pncc = tri[:, :2] @ A.T + b
    frame = get_rasterizer().render([Mesh(tri, np.array([[0, 1, 2]]), colors=(1, 1, 1), pncc=pncc)], 64, 48)
    mask = frame.instance == 1
    rows, cols = np.nonzero(mask)
    centres = np.stack([cols + 0.5, rows + 0.5], -1)
    assert np.allclose(frame.pncc[rows, cols], centres @ A.T + b, atol=1e-5)
    # depth is the interpolated image z too: a plane through the three vertices
    M = np.c_[tri[:, :2], np.ones(3)]
    coef = np.linalg.solve(M, tri[:, 2])
    assert np.allclose(frame.depth[rows, cols], np.c_[centres, np.ones(len(rows))] @ coef, atol=1e-4)
    assert frame.pncc.dtype == np.float32 and np.all(frame.pncc[~mask] == 0)


def test_face_ids_are_per_mesh_and_sphere_normals_face_the_camera():
    sv, sf = icosphere(3)
    a = Mesh(sv * 12 + [16, 16, 50], sf, colors=(1, 1, 1), instance=1)
    b = Mesh(sv * 12 + [46, 16, 50], sf, colors=(1, 1, 1), instance=2)
    frame = get_rasterizer().render([a, b], 64, 32)
    for mesh, inst in ((a, 1), (b, 2)):
        rows, cols = np.nonzero(frame.instance == inst)
        faces = frame.face[rows, cols]
        assert faces.min() >= 0 and faces.max() < len(sf)
        # each pixel's triangle is a front triangle of that sphere, and its projection contains the pixel
        tri = mesh.vertices[sf[faces]]
        assert np.all(tri[:, :, 2].mean(1) < 50 + 1e-9)
        lo, hi = tri[:, :, :2].min(1), tri[:, :, :2].max(1)
        centre = np.stack([cols + 0.5, rows + 0.5], -1)
        assert np.all((centre >= lo - 1e-6) & (centre <= hi + 1e-6))
    assert frame.facing[16, 16] < -0.95 and frame.facing[16, 46] < -0.95


def test_same_scene_gives_the_same_bytes_and_background_fills_the_rest():
    sv, sf = icosphere(2)
    mesh = Mesh(sv * 10 + [20, 20, 0], sf, colors=(0.9, 0.7, 0.6), instance=1, specular=0.3)
    bg = np.full((40, 40, 3), 77, np.uint8)
    f1 = get_rasterizer().render([mesh], 40, 40, background=bg)
    f2 = get_rasterizer().render([mesh], 40, 40, background=bg)
    assert f1.color.tobytes() == f2.color.tobytes() and f1.pncc.tobytes() == f2.pncc.tobytes()
    assert np.all(f1.color[f1.instance == 0] == 77) and np.any(f1.color[f1.instance == 1] != 77)


def test_a_missing_egl_names_the_debian_packages(monkeypatch):
    import moderngl

    def fail(*args, **kwargs):
        raise RuntimeError("eglGetDisplay failed")

    monkeypatch.setattr(raster, "_CTX", None)
    monkeypatch.setattr(moderngl, "create_context", fail)
    with pytest.raises(raster.RasterError, match="libegl1 libegl-mesa0 .*libgl1-mesa-dri"):
        raster.gl_context()


def test_the_inside_of_an_open_box_is_flagged_and_darkened():
    v, f = box_mesh((20, 10, 5), (40, 35, 30))
    lights = raster.Lights(backface=0.0)
    closed = get_rasterizer().render([Mesh(v, f, colors=(0.5, 0.5, 0.5))], 64, 48, lights=lights)
    assert not closed.inside[20, 30] and closed.color[20, 30].max() > 50
    open_front = [i for i in range(len(f)) if not np.allclose(v[f[i], 2], 5.0)]  # remove the near side
    opened = get_rasterizer().render([Mesh(v, f[open_front], colors=(0.5, 0.5, 0.5))], 64, 48, lights=lights)
    assert opened.inside[20, 30] and np.all(opened.color[20, 30] == 0) and opened.depth[20, 30] == 30.0


def test_capsules_and_torsos_are_closed_and_wound_outwards():
    from vggheads.render.bodies import capsule, torso

    for v, f in (capsule((10, 10, 0), (40, 30, 5), 6, 4), torso((30, 10, 0), (30, 50, 0), (1, 0, 0), 10, 9, 5)):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert np.all(counts == 2)  # every edge shared by two triangles: closed
        n = raster.vertex_normals(v, f)
        outward = np.einsum("ij,ij->i", n, v - v.mean(0))
        assert np.mean(outward > 0) > 0.95
        frame = get_rasterizer().render([Mesh(v, f, colors=(1, 1, 1))], 64, 64)
        assert frame.instance.sum() > 0 and not frame.inside[frame.instance > 0].any()


def test_optional_buffers_are_skipped_and_instance_zero_is_refused():
    v, f = box_mesh((2, 2, 1), (10, 10, 3))
    frame = get_rasterizer().render([Mesh(v, f, colors=(1, 1, 1), instance=5)], 16, 16, outputs=())
    assert frame.pncc is None and frame.face is None and frame.facing is None
    assert (frame.instance == 5).sum() == 64 and np.isfinite(frame.depth[frame.instance == 5]).all()
    with pytest.raises(ValueError, match="instance"):
        get_rasterizer().render([Mesh(v, f, colors=(1, 1, 1), instance=0)], 16, 16)
