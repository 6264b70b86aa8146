"""The anonymisation pipeline, one module per stage, in the order the data flows
(DESIGN.md section 1); identitydp_fast/anonymizer.py composes them:

1. ``decode``: any caller image -> (H, W, 3) uint8 RGB, and the result back in the
   caller's own kind (numpy / torch / PIL, dtype, channels, mode), unchanged pixels exact;
2. ``detect``: face boxes and 5 landmarks (dlib HOG / MMOD + shape_predictor_5);
3. ``align``: the model crop template and transform, dlib's identity chip and pyramid;
4. ``identity``: the identity encoder (dlib's face-recognition ResNet, ported);
5. ``release``: the epsilon-IdentityDP release of each face's identity (the model's public
   DP parameters, typical-identity post-processing, the ledger record);
6. ``attributes``: the attribute input, the crop with its inner face degraded;
7. ``generate``: model loading and the generator call (reference or engine);
8. ``blend``: generated crops back into the frame through a feathered mask.

Each stage takes and returns plain arrays and records; no stage imports a later one
(tests/test_layout.py checks it). Nothing here imports training/ or evaluation/.
"""
