"""The CNN face detectors (models/centerface.py, models/retinaface.py, models/face_detector.py,
models/detector_weights.py) and their use in pipeline/detect.py.

Oracle: onnxruntime on the ONNX graph each port was written from (``make detector-oracles``;
those tests skip without it). Tolerances, measured on examples/ and WIDER photos:
* network with fp32 weights read from the graph: every raw output within 1e-4 (1 + |ref|)
  (measured <= 2e-5: float summation order);
* the packaged fp16 weights: face probabilities within 0.02 at every cell (measured <= 8e-3),
  decoded boxes and points within 0.5 px at cells scoring >= 0.3 (measured <= 0.1 px);
* final detections (decode + NMS) from our outputs vs from onnxruntime's: the same faces,
  boxes and points within 0.5 px, scores within 0.02.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from identitydp_fast.io.shared_data import default_data_root
from identitydp_fast.models import centerface, detector_weights, onnx_weights, retinaface
from identitydp_fast.models.face_detector import NAMES, CNNFaceDetector, get_detector, nms
from identitydp_fast.pipeline.decode import read_image

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = read_image(ROOT / "examples" / "astronaut.png")
ASTRONAUT_LM = np.array([[255, 104], [238, 105], [195, 101], [212, 103], [224, 135]], float)
FACE = (175, 76, 265, 166)          # dlib HOG's box of her face
PATCH_CENTRE = (170, 380)           # the mission patch HOG takes for a second face
SPECS = {"centerface": (centerface, centerface.CenterFace), "retinaface": (retinaface, retinaface.RetinaFace)}


def _photos() -> list[np.ndarray]:
    """examples/astronaut.png and, when the shared data is there, 4 WIDER photos (crowds included)."""
    out = [ASTRONAUT]
    wider = default_data_root() / "widerface" / "img"
    if wider.is_dir():
        files = sorted(wider.glob("*/*.jpg"))
        out += [read_image(p) for p in files[::max(1, len(files) // 4)][:4]]
    return out


def _oracle(name: str):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    try:
        onnx_weights.source_path(name)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return onnx_weights.session(name)


def _padded(rgb: np.ndarray) -> torch.Tensor:
    h, w = rgb.shape[:2]
    out = np.zeros((1, -(-h // 32) * 32, -(-w // 32) * 32, 3), np.uint8)
    out[0, :h, :w] = rgb
    return torch.from_numpy(out)


def _decode_all(module, outputs, size):
    """Every cell decoded (threshold 0, no cap), in cell order."""
    if module is retinaface:
        return retinaface.decode(outputs, 0.0, top_k=10 ** 9, size=size)[0]
    return centerface.decode(outputs, 0.0, top_k=10 ** 9)[0]


# ---- the network against onnxruntime ----------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_fp32_port_matches_onnxruntime(name):
    sess = _oracle(name)
    module, cls = SPECS[name]
    net = cls().eval()
    net.load_state_dict(module.state_from_onnx(onnx_weights.load_proto(name)))
    for rgb in _photos()[:3]:
        x = module.preprocess(_padded(rgb))
        with torch.inference_mode():
            ours = net(x)
        ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        for o, r in zip(ours, ref):
            assert o.shape == r.shape
            np.testing.assert_allclose(o.numpy(), r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_packaged_weights_match_onnxruntime(name):
    sess = _oracle(name)
    module, _ = SPECS[name]
    det = get_detector(name)
    for rgb in _photos():
        batch = _padded(rgb)
        x = module.preprocess(batch)
        ours = det.forward(batch)
        ref = tuple(torch.from_numpy(r) for r in sess.run(None, {sess.get_inputs()[0].name: x.numpy()}))
        prob = (lambda o: o[0]) if module is centerface else (lambda o: o[1][..., 1])
        assert (prob(ours) - prob(ref)).abs().max() <= 0.02
        size = tuple(batch.shape[1:3])
        (bo, so, po), (br, sr, pr) = _decode_all(module, ours, size), _decode_all(module, ref, size)
        sel = sr >= 0.3
        assert sel.any()
        assert (bo[sel] - br[sel]).abs().max() <= 0.5
        assert (po[sel] - pr[sel]).abs().max() <= 0.5


class _OracleDetector(CNNFaceDetector):
    """The same pre- and post-processing around onnxruntime's network."""

    def __init__(self, name, sess):
        super().__init__(name)
        self.sess = sess

    def forward(self, rgb):
        x = self.spec.preprocess(rgb).numpy()
        return tuple(torch.from_numpy(r) for r in self.sess.run(None, {self.sess.get_inputs()[0].name: x}))


@pytest.mark.parametrize("name", NAMES)
def test_final_detections_match_onnxruntime(name):
    oracle = _OracleDetector(name, _oracle(name))
    ours = get_detector(name)
    thr = 0.3
    for rgb in _photos():
        [a], [b] = ours.detect([rgb], thr), oracle.detect([rgb], thr)
        # a face scoring within 0.02 of the threshold may fall on either side of it
        sure_a, sure_b = a.scores >= thr + 0.02, b.scores >= thr + 0.02
        for (p, q, sure) in ((a, b, sure_a), (b, a, sure_b)):
            for i in np.where(sure)[0]:
                d = np.abs(q.boxes - p.boxes[i]).max(1)
                j = int(np.argmin(d))
                assert d[j] <= 0.5, (name, p.boxes[i], q.boxes[j])
                assert abs(q.scores[j] - p.scores[i]) <= 0.02
                assert np.abs(q.points[j] - p.points[i]).max() <= 0.5


# ---- pre- and post-processing ------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_finds_the_astronaut_not_her_patch(name):
    [d] = get_detector(name).detect([ASTRONAUT], 0.3)
    assert len(d.boxes) == 1 and 0.5 < d.scores[0] <= 1.0
    cx, cy = d.boxes[0, [0, 2]].mean(), d.boxes[0, [1, 3]].mean()
    assert abs(cx - 220) < 8 and abs(cy - 121) < 15
    # network order: the eye on the image's left first, the nose between the eyes
    p = d.points[0]
    assert p[0, 0] < p[2, 0] < p[1, 0] and p[3, 0] < p[4, 0] and p[2, 1] < p[3, 1]


@pytest.mark.parametrize("name", NAMES)
def test_odd_sizes_tiles_and_scales_agree(name):
    det = get_detector(name)
    [full] = det.detect([ASTRONAUT], 0.3)
    # 297 x 297, padded to 320; cut on the network's 32 px grid, so only the padding differs
    crop = ASTRONAUT[32:329, 96:393]
    [c] = det.detect([crop], 0.3)
    assert len(c.boxes) == 1 and np.abs(c.boxes[0] + (96, 32, 96, 32) - full.boxes[0]).max() < 1.0
    [t] = det.detect([ASTRONAUT], 0.3, tile=256, overlap=128)   # 3 x 3 windows, one batch
    assert len(t.boxes) == 1 and np.abs(t.boxes[0] - full.boxes[0]).max() < 3.0
    [m] = det.detect([ASTRONAUT], 0.3, scales=(0.5, 1.0))
    assert len(m.boxes) == 1 and np.abs(m.boxes[0] - full.boxes[0]).max() < 12.0
    for h, w in ((1, 1), (1, 97), (97, 1025), (33, 31)):
        [d] = det.detect([np.full((h, w, 3), 127, np.uint8)], 0.3)
        assert d.boxes.shape == (0, 4) and d.points.shape == (0, 5, 2)
    a, b = det.detect([ASTRONAUT, crop], 0.3)                # a batch of different sizes
    assert np.array_equal(a.boxes, full.boxes) and np.array_equal(b.boxes, c.boxes)


def test_bad_input_is_refused():
    det = get_detector("centerface")
    for bad, what in ((np.zeros((0, 5, 3), np.uint8), "H, W >= 1"), (np.zeros((8, 8), np.uint8), "shape"),
                      (np.zeros((8, 8, 3), np.float32), "float32"), (np.zeros((8, 8, 4), np.uint8), "RGB"),
                      ([[1, 2, 3]], "list")):
        with pytest.raises(ValueError, match="images\\[0\\]"):
            det.detect([bad])
    for kw, match in (({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"),
                      ({"scales": ()}, "scales"), ({"scales": (0,)}, "scales"),
                      ({"tile": 16}, "tile"), ({"overlap": 4096}, "overlap"), ({"overlap": -1}, "overlap")):
        with pytest.raises(ValueError, match=match):
            det.detect([ASTRONAUT[:40, :40]], **kw)
    with pytest.raises(ValueError, match="detector"):
        CNNFaceDetector("blazeface")


def test_nms():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.95, 0.5, 0.1])
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]        # 0 and 3 overlap 1 at IoU 0.68
    assert nms(boxes, scores, 0.9).tolist() == [1, 0, 2]     # 3 duplicates 0 exactly
    assert nms(boxes[:0], scores[:0], 0.3).tolist() == []


# ---- weights files ------------------------------------------------------------------------

def test_weights_files_load_and_bad_files_are_refused(tmp_path):
    for name in NAMES:
        assert isinstance(detector_weights.load_detector(name), SPECS[name][1])
    with pytest.raises(FileNotFoundError, match="convert_detectors"):
        detector_weights.load_detector("centerface", tmp_path / "absent.safetensors")
    good = detector_weights.default_path("retinaface").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="cannot read"):
        detector_weights.load_detector("retinaface", cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="cannot read"):
        detector_weights.load_detector("retinaface", junk)
    with pytest.raises(ValueError, match="not a centerface weights file"):
        detector_weights.load_detector("centerface", detector_weights.default_path("retinaface"))
    state = retinaface.RetinaFace().state_dict()
    state.pop("stem.bias")
    detector_weights.save_detector(tmp_path / "short.safetensors", "retinaface", state)
    with pytest.raises(ValueError, match="missing \\['stem.bias'\\]"):
        detector_weights.load_detector("retinaface", tmp_path / "short.safetensors")
    state = retinaface.RetinaFace().state_dict()
    state["stem.weight"][0, 0, 0, 0] = float("nan")
    detector_weights.save_detector(tmp_path / "nan.safetensors", "retinaface", state)
    with pytest.raises(ValueError, match="NaN or inf in \\['stem.weight'\\]"):
        detector_weights.load_detector("retinaface", tmp_path / "nan.safetensors")


# ---- the pipeline stage -----------------------------------------------------------------

dlib = pytest.importorskip("dlib")
from identitydp_fast.pipeline import detect  # noqa: E402


@pytest.mark.parametrize("name", detect.CNN_DETECTORS)
def test_detect_faces_cnn_gives_dlib_landmarks(name):
    faces = detect.detect_faces(ASTRONAUT, name)
    assert len(faces) == 1, [(f.box, f.score) for f in faces]      # no mission patch
    f = faces[0]
    assert detect.DEFAULT_MIN_SCORE[name] <= f.score <= 1.0
    assert np.abs(f.landmarks - ASTRONAUT_LM).max() <= 3.0         # dlib's 5 points, its order
    [d] = get_detector(name).detect([ASTRONAUT], 0.3)               # box: the CNN's own
    assert np.abs(np.array(f.box) - d.boxes[0] + (0, 0, 1, 1)).max() <= 1.0
    x0, y0, x1, y1 = detect.dlib_rect(d.boxes[0], name)             # the predictor's: near HOG's
    iw, ih = min(x1, FACE[2]) - max(x0, FACE[0]) + 1, min(y1, FACE[3]) - max(y0, FACE[1]) + 1
    assert iw * ih / ((x1 - x0 + 1) * (y1 - y0 + 1) + 91 * 91 - iw * ih) > 0.75   # fitted on LFW
    # the patch scores far below the default: it is not a near miss
    [d] = get_detector(name).detect([ASTRONAUT], detect.CNN_SCORE_FLOOR)
    near = [s for b, s in zip(d.boxes, d.scores)
            if abs(b[[0, 2]].mean() - PATCH_CENTRE[0]) < 60 and abs(b[[1, 3]].mean() - PATCH_CENTRE[1]) < 60]
    assert all(s < detect.DEFAULT_MIN_SCORE[name] / 2 for s in near)


def test_default_detector_and_min_score():
    assert detect.DEFAULT_DETECTOR in detect.CNN_DETECTORS
    assert detect.check_options() == detect.DEFAULT_MIN_SCORE[detect.DEFAULT_DETECTOR]
    assert detect.check_options("hog") == 0.0 and detect.check_options("hog", min_score=-1) == -1.0
    with pytest.raises(ValueError, match="min_score must be in \\[0, 1\\] for detector 'centerface'"):
        detect.check_options("centerface", min_score=1.5)
    with pytest.raises(ValueError, match="detector must be one of"):
        detect.check_options("blazeface")
    assert detect.cnn_scales(0) == (0.5,) and detect.cnn_scales(1) == (1.0,)
    assert detect.cnn_scales(3) == (1.0, 2.0, 4.0)
    # min_score filters: everything at 0, nothing above 1
    assert len(detect.detect_faces(ASTRONAUT, min_score=0.0)) >= 1
    assert detect.detect_faces(ASTRONAUT, min_score=1.0) == []
    assert detect.detect_faces(np.full((64, 80, 3), 200, np.uint8)) == []


def test_cnn_detection_from_threads_matches_serial():
    imgs = [ASTRONAUT, np.ascontiguousarray(ASTRONAUT[:, ::-1]), np.ascontiguousarray(ASTRONAUT[40:440, 60:460])]
    key = lambda faces: [(f.box, f.landmarks.tolist(), f.score) for f in faces]
    want = [key(detect.detect_faces(im)) for im in imgs]
    bad, start = [], threading.Barrier(3)

    def work(t):
        start.wait()
        for i in range(3):
            k = (t + i) % 3
            if key(detect.detect_faces(imgs[k])) != want[k]:
                bad.append((t, k))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert bad == []


def test_cnn_path_agrees_with_lfw_csv():
    """On LFW (one HOG face each): the CNN path finds that face, its box near HOG's, and
    dlib's landmarks within 0.1 inter-ocular distances of the HOG path's."""
    import csv

    root = default_data_root()
    if not (root / "lfw_landmarks.csv").is_file():
        pytest.skip(f"LFW landmarks not found at {root} (set IDP_DATA to ../shared/data)")
    with open(root / "lfw_landmarks.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["faces"] == "1"][7::611][:20]
    for row in rows:
        faces = detect.detect_faces(read_image(root / "lfw" / row["path"]))
        lm = np.array([float(row[f"{a}{i}"]) for i in range(5) for a in "xy"]).reshape(5, 2)
        iod = np.hypot(*(lm[0:2].mean(0) - lm[2:4].mean(0)))
        best = min(np.abs(f.landmarks - lm).max() for f in faces) if faces else np.inf
        assert best <= 0.1 * iod, (row["path"], best, iod)
