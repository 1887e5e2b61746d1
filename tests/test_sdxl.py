"""The SDXL render backends, exercised end to end on the CPU with the tiny random-weight model.

The tiny model is built once per session through the CLI (``vggheads build-tiny-sdxl``) and then
loaded by the same loader as real weights. Renders are 64 px, 2 steps: each run takes well under
a second after the pipeline loads.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vggheads.schemas import from_rows, read_table, write_table

SHARD = "00000"


# ---------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops are too small to share out; spare threads only spin on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from vggheads.cli import main

    out = tmp_path_factory.mktemp("models") / "tiny-sdxl"
    assert main(["build-tiny-sdxl", "--out", str(out)]) == 0
    return out


@pytest.fixture
def tiny_params(params, tiny_model) -> dict:
    p = copy.deepcopy(params)
    p["render"]["backend"] = "tiny-sdxl"
    p["render"]["sdxl"]["tiny"]["model_dir"] = str(tiny_model)
    p["render"]["sdxl"]["batch_size"] = 2
    p["tracking"]["enabled"] = False
    p["labels"]["labeller"] = "landmark-fit"  # the truth labeller needs renders with a truth (config_rules)
    return p


def make_shard(root: Path, canvases: list[tuple[int, int] | None], seeds: list[int] | None = None) -> Path:
    """Captions, poses and condition images of one shard under ``root``; a None canvas has no person."""
    root.mkdir(parents=True, exist_ok=True)
    cond = root / "conditions"
    cond.mkdir(exist_ok=True)
    captions, poses = [], []
    for i, canvas in enumerate(canvases):
        sid = f"{SHARD}_{i:06d}"
        captions.append(
            {
                "sample_id": sid,
                "shard": SHARD,
                "source_file": "test",
                "source_row": i,
                "url": "",
                "caption": f"{i + 1} people",
                "prompt": f"a photo of {i + 1} people in a park",
                "negative_prompt": "worst quality, low quality",
                "seed": (seeds or [])[i] if seeds else 1000 + i,
            }
        )
        if canvas is None:
            continue
        w, h = canvas
        img = Image.new("RGB", (w, h))
        draw = ImageDraw.Draw(img)
        draw.line((w * 0.3 + 7 * i, h * 0.2, w * 0.5, h * 0.8), fill=(255, 0, 85), width=max(2, w // 64))
        draw.line((w * 0.5, h * 0.2, w * 0.7 - 5 * i, h * 0.8), fill=(0, 255, 0), width=max(2, w // 64))
        img.save(cond / f"{sid}.png")
        poses.append(
            {
                "sample_id": sid,
                "person": 0,
                "width": w,
                "height": h,
                "keypoints": np.zeros(51),
                "box": [0.0, 0.0, float(w), float(h)],
                "condition_image": f"{sid}.png",
                "backend": "procedural",
            }
        )
    write_table(from_rows("captions", captions), root / "captions.parquet", "captions")
    write_table(from_rows("poses", poses), root / "poses.parquet", "poses")
    return root


def run_render(params: dict, shard_dir: Path, out: Path, work: Path | None = None) -> dict:
    """The render stage on a shard made by :func:`make_shard`; outputs under ``out``."""
    from vggheads.stages.render import RenderJob, render

    return render(
        params,
        RenderJob(
            shard=SHARD,
            captions=shard_dir / "captions.parquet",
            poses=shard_dir / "poses.parquet",
            conditions=shard_dir / "conditions",
            head_model=shard_dir / "head.npz",
            out_images=out / "images",
            out_table=out / "render.parquet",
            out_heads=out / "render.heads.parquet",
            out_stats=out / "stats.json",
            work_dir=work or out / "work",
        ),
    )


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture
def spy_generate(monkeypatch):
    """Record the sample ids each pipeline call renders."""
    from vggheads.render import sdxl

    calls: list[list[str]] = []
    real = sdxl.generate

    def spy(pipe, settings, batch, *args, **kwargs):
        calls.append([s.sample_id for s in batch])
        return real(pipe, settings, batch, *args, **kwargs)

    monkeypatch.setattr(sdxl, "generate", spy)
    return calls


# ---------------------------------------------------------------------------------------------
# tokenizer


def test_clip_tokenizer_gives_clips_ids(tiny_model):
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    from vggheads.render.clip_tokenizer import clip_vocab_and_merges, sdxl_tokenizers

    vocab, merges = clip_vocab_and_merges()
    assert len(vocab) == 49408 and len(merges) == 48894
    tok, tok2 = sdxl_tokenizers()
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok("Hello, World!!").input_ids == [49406, 3306, 267, 1002, 748, 49407]
    reference = SimpleTokenizer()
    for text in [
        "two women and a man at a wedding, ultra highres",
        "A crowd   of PEOPLE's faces: 3 kids!",
        "worst quality, low quality, sketch, bad anatomy, nsfw",
        "café naïve résumé",
    ]:
        assert tok(text).input_ids[1:-1] == reference.encode(text), text
    # SDXL's second tokenizer pads with "!" (id 0), the first with <|endoftext|>.
    assert tok2("x", padding="max_length", max_length=5).input_ids == [49406, 343, 49407, 0, 0]
    assert tok("x", padding="max_length", max_length=5).input_ids == [49406, 343, 49407, 49407, 49407]
    # The saved tiny model's tokenizers are the same.
    saved = CLIPTokenizer.from_pretrained(tiny_model / "base" / "tokenizer_2", local_files_only=True)
    assert saved("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert saved.pad_token == "!" and saved.model_max_length == 77


# ---------------------------------------------------------------------------------------------
# sizes and the tiny artifact


def test_render_size_follows_the_canvas():
    from vggheads.render.sdxl import render_size

    assert render_size(1024, 1024, 32, 1280) == (1024, 1024)
    assert render_size(1024, 1536, 32, 1280) == (864, 1280)  # long side capped, aspect kept
    assert render_size(1000, 700, 32, None) == (992, 704)  # rounded to the multiple
    assert render_size(512, 768, 8, 64) == (40, 64)
    assert render_size(20, 900, 32, 1280) == (32, 896)  # never below one multiple


def test_tiny_model_is_tiny_and_reproducible(tiny_model, tmp_path):
    from vggheads.render.tiny_sdxl import build_tiny_sdxl

    info = json.loads((tiny_model / "build.json").read_text())
    assert 1e6 < info["parameters_total"] < 10e6
    for part in (
        "base/model_index.json",
        "t2i-adapter/config.json",
        "controlnet/config.json",
        "controlnet-pncc/config.json",
        "controlnet-depth/config.json",
        "safety-checker/preprocessor_config.json",
    ):
        assert (tiny_model / part).is_file(), part
    again = build_tiny_sdxl(tmp_path / "again")
    for f in sorted(tiny_model.rglob("*.safetensors")):
        assert f.read_bytes() == (again / f.relative_to(tiny_model)).read_bytes(), f


# ---------------------------------------------------------------------------------------------
# rendering a shard


def test_tiny_sdxl_renders_a_shard(tiny_params, tmp_path):
    shard = make_shard(tmp_path / "in", [(512, 512), (512, 512), None, (768, 512), (512, 512)])
    stats = run_render(tiny_params, shard, tmp_path / "out")
    table = read_table(tmp_path / "out" / "render.parquet", "render").to_pylist()
    ids = [r["sample_id"] for r in table]
    assert ids == ["00000_000000", "00000_000001", "00000_000003", "00000_000004"]  # captions order, no-pose dropped
    assert stats["dropped_no_pose"] == 1 and stats["rendered"] == 4 and stats["images"] == 4
    assert stats["safety_checker"] == "off"
    assert read_table(tmp_path / "out" / "render.heads.parquet", "render_heads").num_rows == 0
    for row in table:
        img = Image.open(tmp_path / "out" / "images" / row["image"])
        assert img.size == (row["width"], row["height"])
        assert np.asarray(img).std() > 5  # a rendered picture, not a blank
        assert row["backend"] == "tiny-sdxl" and row["seed"] == 1000 + int(row["sample_id"][-1])
        assert row["prompt"].startswith("a photo of") and row["negative_prompt"] == "worst quality, low quality"
        assert row["base_model"] == str(Path(tiny_params["render"]["sdxl"]["tiny"]["model_dir"]) / "base")
        assert row["condition_model"].endswith("t2i-adapter") and "seconds" not in row  # no wall-clock column
    sizes = {r["sample_id"]: (r["width"], r["height"]) for r in table}
    assert sizes["00000_000000"] == (64, 64) and sizes["00000_000003"] == (64, 40)  # max_side 64, multiple 8
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == sorted(r["image"] for r in table)


def test_same_seed_same_bytes(tiny_params, tmp_path):
    shard = make_shard(tmp_path / "in", [(512, 512)] * 3)
    run_render(tiny_params, shard, tmp_path / "a")
    run_render(tiny_params, shard, tmp_path / "b")
    for name in ("00000_000000.png", "00000_000001.png", "00000_000002.png"):
        assert (tmp_path / "a/images" / name).read_bytes() == (tmp_path / "b/images" / name).read_bytes()
    other = make_shard(tmp_path / "in2", [(512, 512)] * 3, seeds=[1000, 7, 1002])
    run_render(tiny_params, other, tmp_path / "c")
    assert (tmp_path / "c/images/00000_000000.png").read_bytes() == (
        tmp_path / "a/images/00000_000000.png"
    ).read_bytes()
    assert (
        np.abs(pixels(tmp_path / "c/images/00000_000001.png") - pixels(tmp_path / "a/images/00000_000001.png")).mean()
        > 10
    )


def test_batching_does_not_change_an_image(tiny_params, tmp_path):
    """Each sample has its own generator: its image is the same alone or in a batch of 3.

    Bit-exact across batch sizes is not guaranteed (the CPU/GPU kernels pick another blocking
    for another batch shape), so a level or two on a few pixels may differ; another seed
    changes every pixel.
    """
    shard = make_shard(tmp_path / "in", [(512, 512)] * 3)
    one = copy.deepcopy(tiny_params)
    one["render"]["sdxl"]["batch_size"] = 1
    three = copy.deepcopy(tiny_params)
    three["render"]["sdxl"]["batch_size"] = 3
    run_render(one, shard, tmp_path / "one")
    run_render(three, shard, tmp_path / "three")
    for i in range(3):
        a = pixels(tmp_path / f"one/images/00000_00000{i}.png")
        b = pixels(tmp_path / f"three/images/00000_00000{i}.png")
        diff = np.abs(a - b)
        assert diff.max() <= 2 and (diff > 0).mean() < 0.01, (i, diff.max(), (diff > 0).mean())
    unrelated = np.abs(
        pixels(tmp_path / "one/images/00000_000000.png") - pixels(tmp_path / "one/images/00000_000001.png")
    )
    assert unrelated.mean() > 10


def test_resume_after_a_killed_run_redoes_only_missing_images(tiny_params, tmp_path, spy_generate, monkeypatch):
    from vggheads.render import sdxl

    shard = make_shard(tmp_path / "in", [(512, 512)] * 6)
    out, work = tmp_path / "out", tmp_path / "work"
    # 1. a run killed during its second batch (batch size 2): no stage output, two finished samples
    spied = sdxl.generate

    def dies_on_second_batch(pipe, settings, batch, *args, **kwargs):
        if len(spy_generate) == 1:
            raise KeyboardInterrupt
        return spied(pipe, settings, batch, *args, **kwargs)

    monkeypatch.setattr(sdxl, "generate", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_render(tiny_params, shard, out, work)
    assert spy_generate == [["00000_000000", "00000_000001"]]
    assert not (out / "images").exists() and not (out / "render.parquet").exists()
    assert sorted(p.name for p in work.glob("*.png")) == ["00000_000000.png", "00000_000001.png"]
    monkeypatch.setattr(sdxl, "generate", spied)
    spy_generate.clear()
    # 2. the rerun renders only the other four
    stats = run_render(tiny_params, shard, out, work)
    assert sorted(sum(spy_generate, [])) == [f"00000_00000{i}" for i in range(2, 6)]
    assert stats["rendered"] == 4 and stats["reused"] == 2 and stats["images"] == 6
    first = {p.name: p.read_bytes() for p in (out / "images").iterdir()}
    # 3. lose an image, a record (killed between image and record) and leave a stray temp file
    (work / "00000_000001.png").unlink()
    (work / "00000_000004.json").unlink()
    (work / ".00000_000005.png.abc123.png").write_bytes(b"half an image")
    spy_generate.clear()
    stats = run_render(tiny_params, shard, out, work)
    assert sorted(sum(spy_generate, [])) == ["00000_000001", "00000_000004"]
    assert stats["rendered"] == 2 and stats["reused"] == 4
    assert not list(work.glob(".*"))
    for name, data in first.items():
        if name not in ("00000_000001.png", "00000_000004.png"):
            assert (out / "images" / name).read_bytes() == data, name
    # 4. a changed setting that changes the pixels invalidates every record
    changed = copy.deepcopy(tiny_params)
    changed["render"]["sdxl"]["guidance_scale"] = 3.0
    spy_generate.clear()
    stats = run_render(changed, shard, out, work)
    assert stats["rendered"] == 6 and len(sum(spy_generate, [])) == 6


def test_controlnet_option(tiny_params, tmp_path):
    p = copy.deepcopy(tiny_params)
    p["render"]["sdxl"]["conditioning"] = "controlnet"
    shard = make_shard(tmp_path / "in", [(512, 512), (512, 512)])
    stats = run_render(p, shard, tmp_path / "out")
    table = read_table(tmp_path / "out" / "render.parquet", "render").to_pylist()
    assert stats["images"] == 2 and all(r["condition_model"].endswith("controlnet") for r in table)
    adapter = tmp_path / "adapter"
    run_render(tiny_params, shard, adapter)
    assert (adapter / "images/00000_000000.png").read_bytes() != (tmp_path / "out/images/00000_000000.png").read_bytes()


def test_safety_checker_drops_flagged_images(tiny_params, tiny_model, tmp_path, spy_generate):
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

    shard = make_shard(tmp_path / "in", [(512, 512)] * 3)
    out, work = tmp_path / "out", tmp_path / "work"
    # the tiny checker's thresholds (1.0) flag nothing
    p = copy.deepcopy(tiny_params)
    p["render"]["sdxl"]["safety_checker"] = str(tiny_model / "safety-checker")
    stats = run_render(p, shard, out, work)
    assert stats["safety_checker"] == str(tiny_model / "safety-checker") and stats["dropped_nsfw"] == 0
    assert stats["images"] == 3
    # a checker that flags everything: the images are checked again, not rendered again, and dropped
    strict = tmp_path / "strict-checker"
    shutil.copytree(tiny_model / "safety-checker", strict)
    model = StableDiffusionSafetyChecker.from_pretrained(strict, local_files_only=True)
    with torch.no_grad():
        model.concept_embeds_weights.fill_(-2.0)  # cosine - (-2) > 0 for every image
    model.save_pretrained(strict)
    p["render"]["sdxl"]["safety_checker"] = str(strict)
    spy_generate.clear()
    stats = run_render(p, shard, out, work)
    assert spy_generate == [] and stats["dropped_nsfw"] == 3 and stats["images"] == 0
    assert read_table(out / "render.parquet", "render").num_rows == 0 and list((out / "images").iterdir()) == []
    # checker off again: the dropped samples are rendered again
    p["render"]["sdxl"]["safety_checker"] = None
    stats = run_render(p, shard, out, work)
    assert stats["rendered"] == 3 and stats["safety_checker"] == "off" and stats["images"] == 3


# ---------------------------------------------------------------------------------------------
# models: the Hugging Face cache, and clear errors when missing


def _fake_hf_cache(hub: Path, repo_id: str, source: Path) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0" * 40
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_sdxl_backend_loads_model_ids_from_the_local_cache(tiny_params, tiny_model, tmp_path, monkeypatch):
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    _fake_hf_cache(hub, "acme/tiny-sdxl-base", tiny_model / "base")
    _fake_hf_cache(hub, "acme/tiny-openpose-adapter", tiny_model / "t2i-adapter")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    p = copy.deepcopy(tiny_params)
    p["render"]["backend"] = "sdxl"
    p["render"]["sdxl"].update(
        base_model="acme/tiny-sdxl-base", adapter="acme/tiny-openpose-adapter", steps=2, max_side=64
    )
    shard = make_shard(tmp_path / "in", [(512, 512), (512, 512)])
    stats = run_render(p, shard, tmp_path / "out")
    table = read_table(tmp_path / "out" / "render.parquet", "render").to_pylist()
    assert stats["images"] == 2 and stats["dtype"] == "float32"
    assert {r["base_model"] for r in table} == {"acme/tiny-sdxl-base"}
    assert {r["backend"] for r in table} == {"sdxl"}
    # same weights, same sampler: the same image as through the tiny-sdxl backend
    run_render(tiny_params, shard, tmp_path / "tiny")
    assert (tmp_path / "tiny/images/00000_000000.png").read_bytes() == (
        tmp_path / "out/images/00000_000000.png"
    ).read_bytes()


def _cli_render(params: dict, shard: Path, out: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    import yaml

    from vggheads.cli import main

    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    rc = main(
        [
            "render",
            "--params",
            str(params_path),
            "--shard",
            SHARD,
            "--captions",
            str(shard / "captions.parquet"),
            "--poses",
            str(shard / "poses.parquet"),
            "--conditions",
            str(shard / "conditions"),
            "--head-model",
            str(shard / "head.npz"),
            "--out-images",
            str(out / "images"),
            "--out-table",
            str(out / "render.parquet"),
            "--out-heads",
            str(out / "heads.parquet"),
            "--out-stats",
            str(out / "stats.json"),
            "--work-dir",
            str(out / "work"),
        ]
    )
    return rc, capsys.readouterr().err


def test_missing_models_give_clear_errors(tiny_params, tiny_model, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    shard = make_shard(tmp_path / "in", [(512, 512)])
    # a Hugging Face id that is not in the cache (the paper's base model): no download, a clear message
    p = copy.deepcopy(tiny_params)
    p["render"]["backend"] = "sdxl"
    rc, err = _cli_render(p, shard, tmp_path / "out", tmp_path, capsys)
    assert rc == 2 and "Traceback" not in err
    assert "SG161222/RealVisXL_V4.0" in err and "hf download SG161222/RealVisXL_V4.0" in err
    assert "render.sdxl.base_model" in err
    # a local adapter directory that does not exist
    p["render"]["sdxl"]["base_model"] = str(tiny_model / "base")
    p["render"]["sdxl"]["adapter"] = str(tmp_path / "no-such-adapter")
    rc, err = _cli_render(p, shard, tmp_path / "out", tmp_path, capsys)
    assert rc == 2 and str(tmp_path / "no-such-adapter") in err and "render.sdxl.adapter" in err
    # the tiny model not built yet
    p = copy.deepcopy(tiny_params)
    p["render"]["sdxl"]["tiny"]["model_dir"] = str(tmp_path / "not-built")
    rc, err = _cli_render(p, shard, tmp_path / "out", tmp_path, capsys)
    assert rc == 2 and "render.sdxl.tiny.model_dir" in err and "vggheads build-tiny-sdxl" in err
    assert str(tmp_path / "not-built" / "base") in err
    # an incomplete model directory (a weights file missing)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "base" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    p["render"]["sdxl"]["tiny"]["model_dir"] = str(broken)
    rc, err = _cli_render(p, shard, tmp_path / "out", tmp_path, capsys)
    assert rc == 2 and "Traceback" not in err and "unet" in err and str(broken / "base") in err
    assert not (tmp_path / "out" / "render.parquet").exists()


# ---------------------------------------------------------------------------------------------
# head-mesh conditioning: SDXL painted around the procedural scene, whose truth is the heads table


def make_mesh_shard(root: Path, head_model_file: Path, persons_per_sample: list[int], canvas=(256, 192)) -> Path:
    """A shard with real skeletons (the procedural pose sampler) and their OpenPose images."""
    from vggheads.poses.openpose import draw_openpose
    from vggheads.poses.procedural import sample_scene

    root.mkdir(parents=True, exist_ok=True)
    (root / "conditions").mkdir(exist_ok=True)
    shutil.copy(head_model_file, root / "head.npz")
    w, h = canvas
    captions, poses = [], []
    for i, n in enumerate(persons_per_sample):
        sid = f"{SHARD}_{i:06d}"
        captions.append(
            {
                "sample_id": sid,
                "shard": SHARD,
                "source_file": "test",
                "source_row": i,
                "url": "",
                "caption": "people",
                "prompt": f"a photo of {n} people",
                "negative_prompt": "low quality",
                "seed": 2000 + i,
            }
        )
        persons = sample_scene(n, w, h, np.random.default_rng(i))
        Image.fromarray(draw_openpose([p.keypoints for p in persons], w, h, 0.3, 4)).save(
            root / "conditions" / f"{sid}.png"
        )
        for k, p in enumerate(persons):
            poses.append(
                {
                    "sample_id": sid,
                    "person": k,
                    "width": w,
                    "height": h,
                    "keypoints": p.keypoints,
                    "box": p.box,
                    "condition_image": f"{sid}.png",
                    "backend": "procedural",
                }
            )
    write_table(from_rows("captions", captions), root / "captions.parquet", "captions")
    write_table(from_rows("poses", poses), root / "poses.parquet", "poses")
    return root


def mesh_params(tiny_params: dict, conditioning: str = "head-mesh", **head_mesh) -> dict:
    p = copy.deepcopy(tiny_params)
    p["render"]["sdxl"]["conditioning"] = conditioning
    p["render"]["sdxl"]["head_mesh"].update(head_mesh)
    return p


def test_head_mesh_render_writes_the_scene_truth(tiny_params, head_model, head_model_file, tmp_path, spy_generate):
    from vggheads.render.procedural import DEFAULTS
    from vggheads.render.scene_conditions import SceneConditioner

    shard = make_mesh_shard(tmp_path / "in", head_model_file, [1, 2, 3, 2])
    out, work = tmp_path / "out", tmp_path / "work"
    p = mesh_params(tiny_params)
    stats = run_render(p, shard, out, work)
    table = read_table(out / "render.parquet", "render").to_pylist()
    heads = read_table(out / "render.heads.parquet", "render_heads").to_pylist()
    assert stats["images"] == 4 and stats["conditioning"] == "head-mesh" and stats["maps"] == ["pncc", "depth"]
    assert stats["heads"] == len(heads) == stats["scene_heads"] and stats["scene_persons"] == 8
    assert all(
        r["condition_model"].endswith("controlnet-pncc+" + str(Path(r["condition_model"].split("+")[1]))) for r in table
    )
    assert all("controlnet-depth" in r["condition_model"] for r in table)
    # the heads table is the scene's exact truth, as the procedural backend writes it, in the image's pixels
    scener = SceneConditioner(head_model, {**DEFAULTS, **p["render"]["procedural"]}, p["poses"]["min_confidence"])
    poses = read_table(shard / "poses.parquet", "poses").to_pylist()
    for row in table:
        persons = [
            (q["person"], np.asarray(q["keypoints"]).reshape(17, 3))
            for q in poses
            if q["sample_id"] == row["sample_id"]
        ]
        scene = scener(persons, (256, 192), (row["width"], row["height"]), row["seed"])
        mine = [h for h in heads if h["sample_id"] == row["sample_id"]]
        assert len(mine) == len(scene.heads) > 0
        for got, want in zip(mine, scene.heads):
            assert got["head"] == want.person
            np.testing.assert_array_equal(np.asarray(got["flame_params"], np.float32), want.params)
            np.testing.assert_array_equal(np.asarray(got["box"], np.float32), want.box)
            np.testing.assert_array_equal(np.asarray(got["landmarks"], np.float32), want.landmarks.ravel())
            assert (
                0 <= got["box"][0] < got["box"][2] <= row["width"]
                and 0 <= got["box"][1] < got["box"][3] <= row["height"]
            )
    # resuming: nothing is painted again, the truth comes back from the work directory unchanged
    first = (out / "render.heads.parquet").read_bytes()
    spy_generate.clear()
    stats = run_render(p, shard, out, work)
    assert spy_generate == [] and stats["reused"] == 4 and (out / "render.heads.parquet").read_bytes() == first
    # a lost truth file redoes its image; a changed scene setting redoes them all
    (work / "00000_000002.heads.npz").unlink()
    run_render(p, shard, out, work)
    assert sum(spy_generate, []) == ["00000_000002"] and (out / "render.heads.parquet").read_bytes() == first
    p["render"]["procedural"]["hair_p"] = 0.1
    spy_generate.clear()
    assert run_render(p, shard, out, work)["rendered"] == 4


def test_head_mesh_conditions_reach_the_pixels(tiny_params, head_model_file, tmp_path):
    shard = make_mesh_shard(tmp_path / "in", head_model_file, [2, 2])
    run_render(mesh_params(tiny_params), shard, tmp_path / "on")
    run_render(mesh_params(tiny_params, pncc_scale=0.0, depth_scale=0.0), shard, tmp_path / "off")
    run_render(mesh_params(tiny_params, maps=["pncc"]), shard, tmp_path / "pncc")
    for name in ("00000_000000.png", "00000_000001.png"):
        on, off, pncc = (pixels(tmp_path / d / "images" / name) for d in ("on", "off", "pncc"))
        assert np.abs(on - off).mean() > 1 and np.abs(on - pncc).mean() > 1


def test_pose_plus_head_mesh_is_the_pose_pipeline_plus_the_controlnets(tiny_params, head_model_file, tmp_path):
    """With the head-mesh ControlNets at scale 0, ``pose+head-mesh`` paints what the pose-only modes paint:
    through the adapter, the UNet hook reproduces StableDiffusionXLAdapterPipeline; through a ControlNet,
    the multi-ControlNet reproduces the single one. At their scales, the scene changes the image."""
    shard = make_mesh_shard(tmp_path / "in", head_model_file, [1, 3, 2])
    for pose in ("adapter", "controlnet"):
        plain = copy.deepcopy(tiny_params)
        plain["render"]["sdxl"]["conditioning"] = pose
        run_render(plain, shard, tmp_path / pose)
        off = mesh_params(tiny_params, "pose+head-mesh", pose=pose, pncc_scale=0.0, depth_scale=0.0)
        run_render(off, shard, tmp_path / f"{pose}-off")
        run_render(mesh_params(tiny_params, "pose+head-mesh", pose=pose), shard, tmp_path / f"{pose}-on")
        for i in range(3):
            name = f"00000_00000{i}.png"
            a, b = pixels(tmp_path / pose / "images" / name), pixels(tmp_path / f"{pose}-off" / "images" / name)
            diff = np.abs(a - b)
            assert diff.max() <= 2 and (diff > 0).mean() < 0.01, (pose, i, diff.max())
            assert np.abs(a - pixels(tmp_path / f"{pose}-on" / "images" / name)).mean() > 1, (pose, i)
        table = read_table(tmp_path / f"{pose}-on" / "render.parquet", "render").to_pylist()
        assert table[0]["condition_model"].split("+")[0].endswith("t2i-adapter" if pose == "adapter" else "controlnet")


def test_head_mesh_batching_does_not_change_an_image(tiny_params, head_model_file, tmp_path):
    """Each sample's condition images go with it through the multi-ControlNet batch."""
    shard = make_mesh_shard(tmp_path / "in", head_model_file, [1, 2, 3])
    for bs in (1, 3):
        p = mesh_params(tiny_params, "pose+head-mesh")
        p["render"]["sdxl"]["batch_size"] = bs
        run_render(p, shard, tmp_path / f"b{bs}")
    for i in range(3):
        diff = np.abs(
            pixels(tmp_path / f"b1/images/00000_00000{i}.png") - pixels(tmp_path / f"b3/images/00000_00000{i}.png")
        )
        assert diff.max() <= 2 and (diff > 0).mean() < 0.01, (i, diff.max())


def test_missing_head_mesh_controlnet_gives_a_clear_error(
    tiny_params, tiny_model, head_model_file, tmp_path, monkeypatch, capsys
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    shard = make_mesh_shard(tmp_path / "in", head_model_file, [1])
    p = mesh_params(tiny_params, "pose+head-mesh")
    p["render"]["backend"] = "sdxl"
    p["render"]["sdxl"].update(base_model=str(tiny_model / "base"), adapter=str(tiny_model / "t2i-adapter"))
    rc, err = _cli_render(p, shard, tmp_path / "out", tmp_path, capsys)
    assert rc == 2 and "Traceback" not in err
    assert "okupyn/head-mesh-controlnet-xl" in err and "render.sdxl.head_mesh.pncc_controlnet" in err
    assert "hf download okupyn/head-mesh-controlnet-xl" in err
    p["render"]["sdxl"]["head_mesh"]["pncc_controlnet"] = str(tiny_model / "controlnet-pncc")
    rc, err = _cli_render(p, shard, tmp_path / "out", tmp_path, capsys)
    assert rc == 2 and "diffusers/controlnet-depth-sdxl-1.0" in err and "render.sdxl.head_mesh.depth_controlnet" in err


def test_check_command_reports_models(tiny_params, tiny_model, tmp_path, capsys):
    import yaml

    from vggheads.cli import main

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params))
    assert main(["sdxl", "check", "--params", str(path)]) == 0
    assert str(tiny_model / "t2i-adapter") in capsys.readouterr().out
    p = copy.deepcopy(tiny_params)
    p["render"]["sdxl"]["safety_checker"] = str(tmp_path / "no-checker")
    path.write_text(yaml.safe_dump(p))
    assert main(["sdxl", "check", "--params", str(path)]) == 2
    assert "render.sdxl.safety_checker" in capsys.readouterr().err
    # head-mesh modes: the adapter and each ControlNet, under their own keys
    p = mesh_params(tiny_params, "pose+head-mesh")
    path.write_text(yaml.safe_dump(p))
    assert main(["sdxl", "check", "--params", str(path)]) == 0
    out = capsys.readouterr().out
    for key, part in (
        ("render.sdxl.adapter", "t2i-adapter"),
        ("render.sdxl.head_mesh.pncc_controlnet", "controlnet-pncc"),
        ("render.sdxl.head_mesh.depth_controlnet", "controlnet-depth"),
    ):
        assert f"{key}: {tiny_model / part}" in out, key


def test_benchmark_script_runs(capsys, monkeypatch):
    """The benchmark's code path (not its timings) on the tiny architecture."""
    import importlib.util

    from vggheads.config import REPO_ROOT

    spec = importlib.util.spec_from_file_location("bench_sdxl", REPO_ROOT / "benchmarks" / "bench_sdxl.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_sdxl", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    assert (
        bench.main(
            ["--arch", "tiny", "--size", "32", "--images", "2", "--variants", "naive,batched-cl", "--device", "cpu"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "naive" in out and "batched-cl" in out and "vs naive" in out
    assert "python benchmarks/bench_sdxl.py --full" in out  # how to get the GPU figures
    assert bench.main(["--full", "--device", "cpu"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_full_architecture_has_sdxls_size():
    """The benchmark's random-weight SDXL has the published models' parameter counts (same compute)."""
    from vggheads.render.sdxl_arch import build_components, count_parameters

    counts = count_parameters(build_components("full", device="meta"))  # shapes only, no memory
    assert counts == {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
        "adapter": 79_028_160,
    }
