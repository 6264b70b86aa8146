"""Detection (identitydp_fast/pipeline/detect.py): the astronaut, LFW against the landmark
CSV, and the defined behaviour for no face, border faces, tiny faces and caller records.
The default detector unless a test names one; the CSV and upsample tests are dlib HOG's
(the CNN detectors: tests/test_face_detectors.py)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from identitydp_fast.io.shared_data import default_data_root

pytest.importorskip("dlib")

from identitydp_fast.pipeline.decode import read_image  # noqa: E402
from identitydp_fast.pipeline.detect import (FaceRecord, detect_faces, model_path,  # noqa: E402
                                            records_from_landmarks)

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.png"
ASTRONAUT_LM = np.array([[255, 104], [238, 105], [195, 101], [212, 103], [224, 135]], float)


def _data_dir() -> Path:
    return default_data_root()


def _iou(a, b) -> float:
    """IoU of inclusive-index boxes (left, top, right, bottom)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(iw, 0) * max(ih, 0)
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)
    return inter / (area(a) + area(b) - inter)


@pytest.mark.parametrize("detector", ["hog", "centerface"])
def test_astronaut_face_and_landmarks(detector):
    faces = detect_faces(read_image(ASTRONAUT), detector)
    assert faces and all(isinstance(f, FaceRecord) for f in faces)
    best = max(faces, key=lambda f: f.score)
    assert best.score > 0.5
    # HOG's box; the CNN's box is taller (forehead to chin)
    assert _iou(best.box, (175, 76, 265, 166)) > (0.9 if detector == "hog" else 0.6)
    assert best.landmarks.shape == (5, 2) and best.landmarks.dtype == np.float64
    assert np.abs(best.landmarks - ASTRONAUT_LM).max() <= 3.0
    # shape_predictor_5 order: points 0, 1 on the image's right eye, 2, 3 on its left eye
    assert best.landmarks[0, 0] > best.landmarks[1, 0] > best.landmarks[3, 0] > best.landmarks[2, 0]
    assert not best.landmarks.flags.writeable


def test_lfw_agrees_with_csv():
    csv_path = _data_dir() / "lfw_landmarks.csv"
    if not csv_path.is_file():
        pytest.skip(f"LFW landmarks not found at {csv_path} (set IDP_DATA to ../shared/data)")
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["faces"] == "1"][5::613][:20]
    assert len(rows) == 20
    for row in rows:
        img = read_image(_data_dir() / "lfw" / row["path"])
        faces = detect_faces(img, "hog")          # the CSV is dlib HOG's (upsample 1)
        assert len(faces) == 1, row["path"]
        want = tuple(int(row[k]) for k in ("left", "top", "right", "bottom"))
        assert _iou(faces[0].box, want) > 0.9, (row["path"], faces[0].box, want)
        lm = np.array([float(row[f"{a}{i}"]) for i in range(5) for a in "xy"]).reshape(5, 2)
        assert np.abs(faces[0].landmarks - lm).max() <= 1.0, row["path"]


def test_no_face_gives_empty_list():
    assert detect_faces(np.full((200, 300, 3), 128, np.uint8)) == []
    assert detect_faces(np.zeros((8, 8), np.uint8), upsample=0) == []


@pytest.mark.parametrize("detector", ["hog", "centerface", "retinaface"])
def test_face_cut_by_the_border_has_a_clipped_box(detector):
    img = read_image(ASTRONAUT)[60:260, 200:400]   # the face's left part cut off at x = 0
    faces = detect_faces(img, detector)
    for f in faces:
        left, top, right, bottom = f.box
        assert 0 <= left <= right < img.shape[1] and 0 <= top <= bottom < img.shape[0]
    assert faces, f"{detector} still finds the astronaut with a third of the face cut"
    assert faces[0].box[0] == 0


def test_tiny_faces_follow_upsample_and_min_size():
    from PIL import Image

    small = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((128, 128), Image.BILINEAR))
    # the face is ~22 px wide: below HOG's 80 px window at upsample 0 and 1
    assert detect_faces(small, "hog", upsample=0) == []
    found = detect_faces(small, "hog", upsample=2)
    assert found and abs(found[0].landmarks[:, 0].mean() - ASTRONAUT_LM[:, 0].mean() / 4) < 3
    assert detect_faces(small, "hog", upsample=2, min_size=40) == []
    # the default CNN finds the ~22 px face at upsample 1
    found = detect_faces(small)
    assert found and abs(found[0].landmarks[:, 0].mean() - ASTRONAUT_LM[:, 0].mean() / 4) < 3
    assert detect_faces(small, min_size=40) == []


def test_mmod_finds_the_astronaut():
    faces = detect_faces(read_image(ASTRONAUT), detector="mmod", upsample=0)
    assert faces and _iou(faces[0].box, (175, 76, 265, 166)) > 0.5
    assert np.abs(faces[0].landmarks - ASTRONAUT_LM).max() <= 6.0


def test_bad_arguments():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="detector"):
        detect_faces(img, detector="68")
    with pytest.raises(ValueError, match="upsample"):
        detect_faces(img, upsample=-1)
    with pytest.raises(ValueError, match="min_size"):
        detect_faces(img, min_size=-3)
    with pytest.raises(ValueError, match="max_pixels"):
        detect_faces(img, max_pixels=100)
    with pytest.raises(ValueError, match="name"):
        model_path("shape_predictor_68")


def test_records_from_landmarks():
    recs = records_from_landmarks([(175, 76, 265, 166)], ASTRONAUT_LM[None], scores=[0.9])
    assert len(recs) == 1 and recs[0].box == (175, 76, 265, 166) and recs[0].score == 0.9
    assert np.array_equal(recs[0].landmarks, ASTRONAUT_LM)
    assert np.isnan(records_from_landmarks([(0, 0, 9, 9)], np.zeros((1, 5, 2)))[0].score)
    assert records_from_landmarks([], np.zeros((0, 5, 2))) == []
    with pytest.raises(ValueError, match="landmarks"):
        records_from_landmarks([(0, 0, 9, 9)], np.zeros((1, 68, 2)))
    with pytest.raises(ValueError, match="right >= left"):
        records_from_landmarks([(9, 0, 0, 9)], np.zeros((1, 5, 2)))
    with pytest.raises(ValueError, match="finite"):
        records_from_landmarks([(0, 0, 9, 9)], np.full((1, 5, 2), np.nan))
