"""detect_faces from several threads at once returns what it returns alone.

dlib's HOG object_detector keeps scratch buffers in the instance and releases the GIL:
two threads calling one detector got each other's detections (found by
bench/load_test.py: 4 of 6 concurrent anonymize() calls had another image's faces). A face
missed that way is left un-anonymised, so this is a privacy test.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib")

from identitydp_fast.pipeline.decode import read_image  # noqa: E402
from identitydp_fast.pipeline.detect import detect_faces  # noqa: E402

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def _images() -> list[np.ndarray]:
    """Three different images with different faces: the photo, mirrored, and cropped."""
    img = read_image(ASTRONAUT)
    return [img, np.ascontiguousarray(img[:, ::-1]), np.ascontiguousarray(img[40:440, 60:460])]


def _key(faces):
    return [(f.box, f.landmarks.round(6).tolist()) for f in faces]


@pytest.mark.parametrize("detector", ["hog", "centerface"])
def test_concurrent_detection_matches_sequential(detector):
    images = _images()
    expected = [_key(detect_faces(im, detector)) for im in images]
    assert expected[0] != expected[1] != expected[2]      # the images differ in their faces
    problems: list[tuple[int, int, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(3)

    def worker(t: int) -> None:
        start.wait()                                       # all threads detect at once
        for i in range(4):
            k = (t + i) % len(images)
            got = _key(detect_faces(images[k], detector))
            if got != expected[k]:
                with lock:
                    problems.append((t, i, k))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert problems == [], f"(thread, call, image) with another image's faces: {problems}"
