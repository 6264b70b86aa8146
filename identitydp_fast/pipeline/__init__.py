"""The anonymisation pipeline, one module per stage, in the order the data flows
(DESIGN.md section 1); identitydp_fast/anonymizer.py composes them:

* ``decode``: any caller image -> (H, W, 3) uint8 RGB, and the result back in the caller's
  own kind (numpy / torch / PIL, dtype, channels, mode), unchanged pixels exact;
* ``detect``: face boxes and 5 landmarks (dlib HOG / MMOD + shape_predictor_5);
* ``align``: the model crop template and transform, dlib's identity chip, dlib's pyramid;
* ``identity``: the identity encoder (dlib's face-recognition ResNet, ported);
* ``paste``: generated crops back into the frame through a feathered mask.

Each stage takes and returns plain arrays and records; no stage imports a later one.
"""
