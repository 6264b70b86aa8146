"""Face geometry: decode, detect (dlib HOG/MMOD + 5 landmarks), align.

* ``image_io``: any caller image -> (H, W, 3) uint8 RGB, with a pixel limit.
* ``detect``: ``detect_faces`` -> ``FaceRecord`` (box, 5 landmarks, score);
  ``records_from_landmarks`` for callers with their own detector.
* ``align``: least-squares similarities, the model crop template, dlib's identity chip.

The warp itself is an op: ``identitydp_fast.reference.warp_affine`` (and its kernels).
dlib is imported only inside the functions that need it.
"""
from .align import (crop_face_ellipse, crop_template, crop_transform, dlib_chip_needs_pyramid,
                    dlib_chip_transform, dlib_face_chips, invert_affine, similarity_transform)
from .detect import FaceRecord, detect_faces, model_path, records_from_landmarks
from .image_io import MAX_PIXELS, read_image, to_rgb_uint8

__all__ = ["FaceRecord", "MAX_PIXELS", "crop_face_ellipse", "crop_template", "crop_transform",
           "detect_faces", "dlib_chip_needs_pyramid", "dlib_chip_transform", "dlib_face_chips",
           "invert_affine", "model_path", "read_image", "records_from_landmarks",
           "similarity_transform", "to_rgb_uint8"]
