"""Weights files of the CNN face detectors (models/centerface.py, models/retinaface.py).

One safetensors file per detector, identitydp_fast/weights/<name>.safetensors, written once by
tools/convert_detectors.py from the ONNX graph its package ships:

* tensors: the module's ``state_dict()`` (BatchNorm already folded), stored in ``dtype``
  (float16 by default: tests/test_face_detectors.py bounds what that changes); loaded back
  as float32.
* metadata: ``format`` = FORMAT, ``format_version``, ``name`` (the detector), ``source``
  (package and file the weights came from), ``licence``, ``dtype``.

``load_detector`` refuses, naming the file: a missing file (with the command that writes
it), an unreadable or truncated one, another format or detector, tensors that do not fit
the module (missing / unexpected / mis-shaped), NaN or inf.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

#: the detectors with a weights file here (identitydp_fast/weights/<name>.safetensors)
NAMES = ("centerface", "retinaface")
FORMAT = "identitydp-fast/face-detector"
FORMAT_VERSION = "1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
_DTYPES = {torch.float32: "float32", torch.float16: "float16"}


def _spec(name: str):
    from . import centerface, retinaface

    specs = {centerface.NAME: (centerface, centerface.CenterFace),
             retinaface.NAME: (retinaface, retinaface.RetinaFace)}
    if name not in specs:
        raise ValueError(f"detector must be one of {sorted(specs)}, got {name!r}")
    return specs[name]


def default_path(name: str) -> Path:
    _spec(name)
    return WEIGHTS_DIR / f"{name}.safetensors"


def save_detector(path: str | os.PathLike, name: str, state: dict[str, torch.Tensor],
                  dtype: torch.dtype = torch.float16) -> Path:
    """Write ``state`` (the module's state dict) for detector ``name``, atomically."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype}")
    module, _ = _spec(name)
    path = Path(path)
    tensors = {k: v.detach().cpu().to(dtype).contiguous() for k, v in state.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
            "source": module.SOURCE, "licence": "MIT (see source)", "dtype": _DTYPES[dtype]}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def load_detector(name: str, path: str | os.PathLike | None = None) -> torch.nn.Module:
    """Detector ``name``'s module (float32, eval mode, no gradients) from ``path`` (default:
    the packaged file)."""
    _, cls = _spec(name)
    path = Path(path) if path is not None else default_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{name} weights {path} not found (write them with: make "
                                f"detector-oracles && python tools/convert_detectors.py)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or meta.get("name") != name:
                raise ValueError(f"{path} is not a {name} weights file (format {meta.get('format')!r}, "
                                 f"name {meta.get('name')!r})")
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{path}: format_version {meta.get('format_version')!r}, this code "
                                 f"reads {FORMAT_VERSION!r}")
            state = {k: f.get_tensor(k).float() for k in f.keys()}
    except ValueError:
        raise
    except Exception as exc:  # safetensors raises its own errors for a corrupt header or body
        raise ValueError(f"cannot read {name} weights {path}: {exc}") from None
    model = cls()
    want = model.state_dict()
    missing, unexpected = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    shaped = [k for k in set(want) & set(state) if want[k].shape != state[k].shape]
    if missing or unexpected or shaped:
        raise ValueError(f"{name} weights {path} do not fit the module: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, mis-shaped {sorted(shaped)[:5]}")
    bad = [k for k, t in state.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"{name} weights {path} hold NaN or inf in {bad[:5]}: the file is broken")
    model.load_state_dict(state)
    model.requires_grad_(False)
    return model.eval()
