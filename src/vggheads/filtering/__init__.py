"""Image filtering (paper section 1.7): the four rules of ``filter_pipeline.py``.

An image is removed when (a) it has no head; (b) the head count changes when the image is flipped
horizontally and the detector runs again (the original code forgot to flip; here the image really
is flipped); (c) a face found by a face detector overlaps no head box; (d) the vertical line
nearest the centre that cuts no head box, with heads on both sides, splits the image into halves
whose head counts do not add up to the total. Each rule can be switched off; the first rule that
fails is the reason recorded for the image.

:mod:`.rules` holds the rules as plain functions of boxes and a detector callable;
:mod:`.faces` the face detectors whose weights ship inside packages (MTCNN of facenet-pytorch,
dlib's HOG and MMOD detectors).
"""
