"""Pose skeletons for the ``extract_poses`` stage: COCO-17 keypoints and OpenPose-18 condition images."""
