"""Weights files of the prior-256 model (reference/prior_mix.py): one safetensors file holding
the frozen face prior and the fitted maps together.

* tensors: ``PriorMixGenerator.state_dict()``: ``prior.*`` (the MobileStyleGAN weights with
  its 256 head and w_avg), ``attribute_encoder.map.*`` and ``identity_mapper.map.*`` (the
  ridge fits), ``identity_layers``, and the bottleneck's public DP parameters. Weights in fp16
  by default; buffers (the DP parameters, the maps' standardisation, w_avg, the fixed noise
  maps) stay float32 so the privacy parameters are stored exactly.
* metadata: ``format`` = FORMAT, ``format_version``, ``config`` (PriorMixConfig JSON),
  ``summary`` (the fit's facts and the public DP parameters), ``licence``.

Errors name the file: missing, not this format, corrupt header, tensors that do not fit,
NaN or inf.
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

FORMAT = "identitydp-fast/prior-mix"
FORMAT_VERSION = "1"
LICENCE = (PRIOR_LICENCE + "; the fitted maps learned from the prior's own samples only: the "
           "same terms")


def save_mix_generator(path: str | Path, model, summary: dict, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``model`` (a PriorMixGenerator) atomically (a .tmp file, then renamed)."""
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
                                 "output_norm": float(bn.dp_output_norm),
                                 "statistics_from": "dlib descriptors of the prior's own samples"}}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "licence": LICENCE,
            "config": json.dumps(dataclasses.asdict(model.config)), "summary": json.dumps(summary),
            "dtype": str(dtype).replace("torch.", "")}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def file_format(path: str | Path) -> str | None:
    """The ``format`` metadata of a safetensors file (None when unreadable or absent)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format")
    except Exception:
        return None


def is_prior_mix_file(path: str | Path) -> bool:
    return file_format(path) == FORMAT


def load_mix_generator(path: str | Path, device="cpu"):
    """The PriorMixGenerator of a weights file: float32, eval mode, frozen, on ``device``;
    ``training_summary`` holds the file's summary."""
    from ..reference.mobile_stylegan import FacePrior
    from ..reference.prior_mix import PriorMixConfig, PriorMixGenerator

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prior-256 weights {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path} is not a prior-256 weights file (format {meta.get('format')!r})")
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{path}: format_version {meta.get('format_version')!r} is not "
                                 f"{FORMAT_VERSION!r} (written by another identitydp-fast version)")
            state = {k: f.get_tensor(k).float() for k in f.keys()}
        cfg = json.loads(meta["config"])
        summary = json.loads(meta.get("summary", "{}"))
    except (ValueError, FileNotFoundError):
        raise
    except Exception as exc:  # a corrupt header or metadata
        raise ValueError(f"cannot read prior-256 weights {path}: {exc}") from exc
    config = PriorMixConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    prior = FacePrior()
    prior.has_head256 = True
    model = PriorMixGenerator(config, prior)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"weights file {path} does not fit PriorMixGenerator: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}")
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"prior-256 weights {path} hold NaN or inf in {name}: the file is broken")
    model.training_summary = summary
    model.requires_grad_(False)
    return model.to(device).eval()
