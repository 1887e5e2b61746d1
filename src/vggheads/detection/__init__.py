"""Binary head detection (paper section 1.5): an ultralytics detector (YOLO or RT-DETR, built from
its yaml) trained on a labelled subset, and its inference with the paper's thresholds.

- :mod:`.data`: the labelled subset, from procedural render truth or a COCO json of head boxes
  (the format Labelbox exports), written as a YOLO dataset in a temporary directory;
- :mod:`.train`: training (offline, CPU or GPU) and the held-out recall/precision;
- :mod:`.infer`: :class:`~.infer.HeadBoxDetector`, image(s) -> head boxes and scores.
"""
