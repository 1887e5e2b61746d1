"""3DMM pseudo-labels for detected heads (paper section 1.6), and their quality against truth.

Every head box is extended by 25 % per side and clipped to the image (:mod:`.crops`), then a
labeller gives its 413 parameters in the image-pixel convention ``v_img = s * (R v) + t``:

- ``truth`` (:mod:`.truth`): procedural renders, matched to the exact render truth by IoU;
- ``dad3dnet`` (:mod:`.dad3dnet`): the official DAD-3DNet TorchScript file from a local path,
  with its preprocessing and its ``readjust_3dmm_to_the_input_image`` re-expressed in pixels;
- ``model`` (:mod:`.model`): this project's own trained model (bootstrapping rounds);
- ``landmark-fit`` (:mod:`.landmark_fit`): dlib's 68-point predictor + batched fitting of pose,
  shape and expression with priors (:mod:`vggheads.core.fitting`); the same fit can refine any labeller.

:mod:`.quality` scores labels against the exact truth of procedural renders (detection recall and
precision, landmark NME, pose error).
"""
