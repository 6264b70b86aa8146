"""Weights files of the prior-based generator (reference/prior_aad.py): one safetensors file
holding the frozen prior and the trained parts together.

* tensors: ``PriorAADGenerator.state_dict()`` (``prior.*`` the MobileStyleGAN weights with its
  256 head and w_avg; ``encoder.*``, ``mapper.*``, ``aad.*``, ``attr_layer_offset``; the
  bottleneck's DP parameters and whitening statistics). Floating parameters in fp16 by
  default; buffers (the DP parameters, w_avg, the fixed noise maps, scales) stay float32 so the
  privacy parameters are stored exactly.
* metadata: ``format`` = "identitydp-fast/prior-aad", ``format_version``, ``config``
  (PriorAADConfig JSON), ``summary`` (training facts and the public DP parameters), ``licence``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .mobile_stylegan import LICENCE as PRIOR_LICENCE

FORMAT = "identitydp-fast/prior-aad"
FORMAT_VERSION = "1"
LICENCE = (PRIOR_LICENCE + "; the trained parts learned from the prior's own samples: the same terms")


def save_generator(path: str | Path, model, summary: dict, dtype: torch.dtype = torch.float16) -> Path:
    path = Path(path)
    buffers = {n for n, _ in model.named_buffers()}
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            t = t.float() if name in buffers else t.to(dtype)
        tensors[name] = t
    bn = model.bottleneck
    summary = {**summary, "dp": {"center_norm": float(bn.dp_center.norm()), "clip_l1": float(bn.dp_clip),
                                 "output_norm": float(bn.dp_output_norm)}}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "licence": LICENCE,
            "config": json.dumps(dataclasses.asdict(model.cfg)), "summary": json.dumps(summary),
            "dtype": str(dtype).replace("torch.", "")}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def is_prior_generator_file(path: str | Path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT
    except Exception:
        return False


def load_generator(path: str | Path, device="cpu"):
    """The PriorAADGenerator of a weights file, float32, eval mode, on ``device``."""
    from ..reference.mobile_stylegan import FacePrior
    from ..reference.prior_aad import PriorAADConfig, PriorAADGenerator

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator weights {path} not found")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a prior-aad weights file (format {meta.get('format')!r})")
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    cfg_dict = json.loads(meta["config"])
    cfg = PriorAADConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
    prior = FacePrior()
    prior.has_head256 = True
    model = PriorAADGenerator(cfg, prior)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"weights file {path} does not match PriorAADGenerator({cfg.name}): missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(device).eval()
