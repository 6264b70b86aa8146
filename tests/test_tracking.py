"""FaceTracker on synthetic boxes: births, deaths after max_age, crossing faces, gating."""
from __future__ import annotations

import numpy as np
import pytest

from identitydp_fast.pipeline.detect import FaceRecord
from identitydp_fast.io.tracking import FaceTracker, box_iou

# 5 landmarks of a face box at (0, 0) with side 100: eyes, nose (dlib order)
_LM = np.array([[70, 40], [58, 40], [30, 40], [42, 40], [50, 65]], dtype=np.float64)


def face(x: float, y: float, side: float = 100.0) -> FaceRecord:
    """A face whose box's top-left corner is (x, y)."""
    box = (x, y, x + side - 1, y + side - 1)
    return FaceRecord(box=box, landmarks=_LM * side / 100.0 + [x, y], score=1.0)


def test_box_iou():
    assert box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0.0
    assert box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)


def test_one_face_moving_is_one_track():
    tr = FaceTracker()
    ups = [tr.update([face(10 + 6 * t, 20 + 2 * t)]) for t in range(30)]
    assert ups[0].born == (0,)
    assert all(u.assignment == (0,) and not u.born and not u.ended for u in ups[1:])
    tracks = tr.finish()
    assert len(tracks) == 1 and tracks[0].hits == 30
    assert tracks[0].birth_frame == 0 and tracks[0].last_frame == 29
    np.testing.assert_allclose(tracks[0].velocity, [6, 2])


def test_births_and_deaths_with_max_age():
    tr = FaceTracker(max_age=2)
    assert tr.update([face(0, 0)]).born == (0,)
    u = tr.update([face(2, 0), face(400, 0)])          # a second face appears
    assert u.assignment == (0, 1) and u.born == (1,)
    for _ in range(2):                                  # face 1 missing for 2 frames: still alive
        u = tr.update([face(4, 0)])
        assert u.ended == () and set(tr.live) == {0, 1}
    u = tr.update([face(6, 0)])                         # third missed frame > max_age: ends
    assert u.ended == (1,) and set(tr.live) == {0}
    u = tr.update([face(8, 0), face(400, 0)])           # the same place again: a new track
    assert u.assignment == (0, 2) and u.born == (2,)


def test_gap_within_max_age_keeps_the_track():
    tr = FaceTracker(max_age=3)
    for t in range(5):
        tr.update([face(100 + 5 * t, 50)])
    for _ in range(3):
        tr.update([])                                   # detector misses the face 3 times
    u = tr.update([face(100 + 5 * 8, 50)])              # found where constant velocity says
    assert u.assignment == (0,) and u.born == ()


def test_crossing_faces_keep_their_ids():
    """Two faces move towards each other along one line, overlap, and part: constant
    velocity prediction keeps each id on its own face (a nearest-box rule swaps them)."""
    tr = FaceTracker()
    ids_left, ids_right = [], []
    for t in range(25):
        a = face(0 + 40 * t, 100)      # left to right
        b = face(990 - 40 * t, 104)    # right to left, slightly lower; they pass between
        # frames (a at x=480 -> 520 while b goes 510 -> 470): the nearest previous box swaps
        order = [a, b] if t % 2 else [b, a]  # detection order must not matter
        u = tr.update(order)
        ia, ib = (u.assignment[0], u.assignment[1]) if t % 2 else (u.assignment[1], u.assignment[0])
        ids_left.append(ia)
        ids_right.append(ib)
    assert set(ids_left) == {ids_left[0]} and set(ids_right) == {ids_right[0]}
    assert ids_left[0] != ids_right[0]
    assert len(tr.finish()) == 2


def test_far_jump_is_a_new_track():
    tr = FaceTracker(max_age=0)
    tr.update([face(0, 0)])
    u = tr.update([face(500, 500)])
    assert u.born == (1,) and u.ended == (0,)


def test_landmark_gate_matches_without_overlap():
    """A small fast face: boxes do not overlap between frames but the landmarks (after
    the predicted motion) are close, so the track continues."""
    tr = FaceTracker()
    tr.update([face(0, 0, 40)])
    tr.update([face(30, 0, 40)])                # IoU 10/70 < 0.3, landmarks 0.75 side apart
    assert len(tr.live) == 2                    # no velocity yet: a new track
    tr2 = FaceTracker(dist_max=0.8)
    tr2.update([face(0, 0, 40)])
    assert tr2.update([face(30, 0, 40)]).assignment == (0,)
    assert tr2.update([face(60, 0, 40)]).assignment == (0,)   # predicted: exact


def test_bad_arguments():
    with pytest.raises(ValueError, match="iou_min"):
        FaceTracker(iou_min=0)
    with pytest.raises(ValueError, match="max_age"):
        FaceTracker(max_age=-1)
    tr = FaceTracker()
    tr.update([], frame=5)
    with pytest.raises(ValueError, match="frames must increase"):
        tr.update([], frame=5)
