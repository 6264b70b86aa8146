"""Where dlib's model files come from.

The CC0 files (ResNet identity weights, 5-point landmark predictor, MMOD detector) ship in
the ``face-recognition-models`` package; it is found without importing it (its
``__init__`` needs pkg_resources, gone from setuptools >= 81). ``IDP_MODEL_DIR`` may point
at a folder holding the files instead (offline machines, GPU boxes without the package).
The package's 68-point predictor is not free for commercial use and is never used.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: key -> file name
MODEL_FILES = {
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "mmod": "mmod_human_face_detector.dat",
}


def model_file(name: str) -> Path:
    """Path of a dlib model file, by key ('resnet', 'landmarks', 'mmod') or file name.

    Looks in $IDP_MODEL_DIR first, then in the installed face_recognition_models package.
    Raises FileNotFoundError saying how to install it.
    """
    filename = MODEL_FILES.get(name, name)
    if filename not in MODEL_FILES.values():
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_FILES)}")
    override = os.environ.get("IDP_MODEL_DIR")
    if override:
        path = Path(override) / filename
        if path.is_file():
            return path
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "models" / filename
        if path.is_file():
            return path
    where = f" (IDP_MODEL_DIR={override!r} does not hold it either)" if override else ""
    if not locations:
        raise FileNotFoundError(f"model file {filename!r} needs the face-recognition-models package, "
                                f"which is not installed: pip install face-recognition-models{where}")
    raise FileNotFoundError(f"model file {filename!r} not found in face_recognition_models at "
                            f"{locations}{where}: pip install --force-reinstall face-recognition-models")
