"""What the paper released, as first-class inputs (docs/release.md).

=====================  ======================================================================
``official``           :class:`OfficialDetector`: the released model (``vgg_heads_l.trcd`` TorchScript
                       or ``vgg_heads_l.onnx``) with the exact pipeline of the ``head_detector`` package
``standin``            stand-ins with exactly the released model's inputs and outputs, wrapping this
                       project's network (tests, benchmarks, trying the pipeline without the real file)
``layout``             the released dataset's tree: ``large/split_000NN/{images, annotations, files.txt}``
``convert``            release <-> image-pixel parameter conventions; subset decoding (landmarks, boxes, pose)
``importer``           one split of the release -> this project's manifest tables, streamed
=====================  ======================================================================

The released files are CC BY-NC 4.0 (model and dataset) and never downloaded by the pipeline.
"""

from __future__ import annotations

MODEL_ORIGIN = (
    "the Hugging Face repository okupyn/vgg_heads (https://huggingface.co/okupyn/vgg_heads): "
    "vgg_heads_l.trcd (TorchScript, GPU), vgg_heads_l_cpu.trcd (TorchScript, CPU) or vgg_heads_l.onnx"
)
DATASET_ORIGIN = (
    "the unpacked VGGHeads.tar (about 187 GB; academictorrents 1ac36f16386061685ed303dea6f0d6179d2e2121 "
    "or thor.robots.ox.ac.uk, checked against its MD5SUMS)"
)
LICENCE = "CC BY-NC 4.0 (non-commercial use only)"
