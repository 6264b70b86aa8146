"""Face tracks across video frames: which detection in frame t is which face of frame t-1.

The video path releases ONE identity vector per track (at its birth) and renders every
frame of the track with it, so the tracker decides how many releases, hence how much
epsilon, a video costs. The rule, in full:

* **State.** Each live track keeps the box and 5 landmarks of its last matched
  detection, a landmark velocity (pixels per frame, mean of the 5 points, exponentially
  smoothed with weight 1/2 on the newest displacement) and ``missed``, the number of
  consecutive frames without a match.
* **Prediction.** At frame t a track's landmarks and box are its last ones moved by
  velocity * (frames since its last match): constant velocity, so two faces that cross
  keep their directions instead of swapping at the crossing.
* **Candidates.** A (track, detection) pair is a candidate when
  IoU(predicted box, detection box) >= ``iou_min`` (default 0.3) OR the normalised
  landmark distance, mean over the 5 points of |predicted - detected| divided by the
  detection's box side max(w, h), is <= ``dist_max`` (default 0.25).
* **Matching.** Greedy, in order of increasing landmark distance (ties: larger IoU, then
  the older track, then the earlier detection); each track and each detection is used at
  most once. Greedy on a gated cost is exact for separated faces and is what makes the
  result independent of detection order when faces are far apart.
* **Births.** Every detection left unmatched starts a new track (new id, increasing).
* **Deaths.** A track unmatched for more than ``max_age`` consecutive frames ends; a face
  seen again after that is a new track (a new release: a person who appears in k tracks
  gets k independent releases, k * epsilon by basic composition).

Wrong associations cost no privacy: a face drawn with another track's released vector is
still post-processing of releases already made; the identity of the face itself is then
not released at all. They cost consistency (the drawn identity changes).
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Track:
    """A live or ended track. ``box`` (left, top, right, bottom) and ``landmarks`` (5, 2)
    are those of the last matched detection."""

    track_id: int
    birth_frame: int
    last_frame: int
    box: np.ndarray          # (4,) float64
    landmarks: np.ndarray    # (5, 2) float64
    velocity: np.ndarray     # (2,) float64, pixels per frame
    missed: int = 0
    hits: int = 1

    def predicted(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(box (4,), landmarks (5, 2)) extrapolated to ``frame`` at constant velocity."""
        shift = self.velocity * float(frame - self.last_frame)
        return self.box + np.tile(shift, 2), self.landmarks + shift


@dataclasses.dataclass(frozen=True)
class TrackUpdate:
    """What one frame did: ``assignment[i]`` is the track id of detection i; ``born`` the
    ids started at this frame (in detection order); ``ended`` the ids that died (unmatched
    for more than max_age frames), in id order."""

    frame: int
    assignment: tuple[int, ...]
    born: tuple[int, ...]
    ended: tuple[int, ...]


def box_iou(a, b) -> float:
    """IoU of two (left, top, right, bottom) boxes with inclusive pixel indices."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = lambda r: max(r[2] - r[0] + 1, 0) * max(r[3] - r[1] + 1, 0)  # noqa: E731
    return float(inter / (area(a) + area(b) - inter))


def _face_arrays(face) -> tuple[np.ndarray, np.ndarray]:
    box = np.asarray(face.box, dtype=np.float64).reshape(4)
    lm = np.asarray(face.landmarks, dtype=np.float64)
    if lm.shape != (5, 2) or not (np.isfinite(lm).all() and np.isfinite(box).all()):
        raise ValueError(f"a face needs a finite box (4,) and landmarks (5, 2), got box "
                         f"{box.tolist()} and landmarks of shape {lm.shape}")
    return box, lm


class FaceTracker:
    """Associates per-frame detections (objects with ``box`` and ``landmarks``, e.g.
    FaceRecord) into tracks; see the module docstring for the rule.

    iou_min in (0, 1], dist_max >= 0, max_age >= 0 (frames a track survives unmatched;
    0 ends a track at its first missed frame).
    """

    def __init__(self, iou_min: float = 0.3, dist_max: float = 0.25, max_age: int = 10):
        if not 0.0 < float(iou_min) <= 1.0:
            raise ValueError(f"iou_min must be in (0, 1], got {iou_min!r}")
        if not float(dist_max) >= 0.0:
            raise ValueError(f"dist_max must be >= 0 (fraction of the face box side), got {dist_max!r}")
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age must be an integer >= 0 (frames), got {max_age!r}")
        self.iou_min, self.dist_max, self.max_age = float(iou_min), float(dist_max), max_age
        self.live: dict[int, Track] = {}
        self.ended: list[Track] = []
        self._next_id = 0
        self._frame = -1

    def update(self, faces, frame: int | None = None) -> TrackUpdate:
        """Feed the detections of the next frame (``frame`` defaults to the previous + 1 and
        must increase). Returns the assignment, the births and the deaths."""
        frame = self._frame + 1 if frame is None else int(frame)
        if frame <= self._frame:
            raise ValueError(f"frames must increase: got {frame} after {self._frame}")
        self._frame = frame
        dets = [_face_arrays(f) for f in faces]

        candidates = []  # (distance, -iou, track_id, detection index)
        for tid, tr in self.live.items():
            pbox, plm = tr.predicted(frame)
            for j, (box, lm) in enumerate(dets):
                side = max(box[2] - box[0] + 1.0, box[3] - box[1] + 1.0, 1.0)
                dist = float(np.linalg.norm(plm - lm, axis=1).mean() / side)
                iou = box_iou(pbox, box)
                if iou >= self.iou_min or dist <= self.dist_max:
                    candidates.append((dist, -iou, tid, j))
        candidates.sort()
        assignment: list[int | None] = [None] * len(dets)
        used: set[int] = set()
        for _, _, tid, j in candidates:
            if tid in used or assignment[j] is not None:
                continue
            used.add(tid)
            assignment[j] = tid
            tr = self.live[tid]
            box, lm = dets[j]
            gap = frame - tr.last_frame
            step = (lm - tr.landmarks).mean(axis=0) / gap
            tr.velocity = step if tr.hits == 1 else 0.5 * tr.velocity + 0.5 * step
            tr.box, tr.landmarks, tr.last_frame = box, lm, frame
            tr.missed, tr.hits = 0, tr.hits + 1

        ended = []
        for tid in sorted(self.live):
            if tid in used:
                continue
            tr = self.live[tid]
            tr.missed += 1
            if tr.missed > self.max_age:
                ended.append(tid)
                self.ended.append(self.live.pop(tid))

        born = []
        for j, (box, lm) in enumerate(dets):
            if assignment[j] is None:
                tid = self._next_id
                self._next_id += 1
                self.live[tid] = Track(tid, frame, frame, box, lm, np.zeros(2))
                assignment[j] = tid
                born.append(tid)
        return TrackUpdate(frame, tuple(assignment), tuple(born), tuple(ended))

    def finish(self) -> list[Track]:
        """End every live track; returns all tracks ever made, in id order."""
        self.ended.extend(self.live.values())
        self.live = {}
        return sorted(self.ended, key=lambda t: t.track_id)
