"""AEI-Net weights files: safetensors with the config and a training summary in the metadata.

File layout (one ``.safetensors`` file):

* tensors: the model's ``state_dict()`` (parameters and buffers, names as in
  identitydp_fast/reference/aei_net.py). With ``dtype=torch.float16`` the floating-point
  parameters are stored in fp16 (half the size); buffers (BatchNorm statistics, the
  identity whitening statistics and the DP parameters dp_center / dp_clip /
  dp_output_norm) always stay float32, so the privacy parameters are stored exactly.
* metadata (strings): ``format`` = "identitydp-fast/aei-net", ``format_version`` = "1",
  ``config`` = AEINetConfig JSON, ``summary`` = free-form JSON (training facts: steps,
  data, losses, licence of the data...), ``dtype`` = storage dtype of the parameters.

``load_model(path)`` rebuilds the AEINet from the stored config, checks every tensor's
name and shape against it and raises ``WeightsMismatchError`` listing what is missing,
unexpected or mis-shaped; tensors load back as float32 (fp16 files: converted).
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import AEINetConfig

FORMAT = "identitydp-fast/aei-net"
FORMAT_VERSION = "1"
_STORAGE_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


class WeightsMismatchError(ValueError):
    """A weights file's tensors do not fit the model its config describes.

    missing: names the model needs and the file lacks; unexpected: names the file has and
    the model does not; mis_shaped: (name, file shape, model shape).
    """

    def __init__(self, path: str, missing: list[str], unexpected: list[str],
                 mis_shaped: list[tuple[str, tuple, tuple]]):
        self.missing, self.unexpected, self.mis_shaped = missing, unexpected, mis_shaped

        def some(items, fmt=str, k=10):
            s = ", ".join(fmt(i) for i in items[:k])
            return s + (f", ... ({len(items) - k} more)" if len(items) > k else "")

        lines = [f"weights file {path} does not match its model:"]
        if missing:
            lines.append(f"  missing {len(missing)} tensor(s): {some(missing)}")
        if unexpected:
            lines.append(f"  unexpected {len(unexpected)} tensor(s): {some(unexpected)}")
        if mis_shaped:
            lines.append(f"  mis-shaped {len(mis_shaped)} tensor(s): "
                         + some(mis_shaped, lambda t: f"{t[0]} file {list(t[1])} vs model {list(t[2])}"))
        lines.append("  (was the file written for another config or code version? "
                     "the config is in its metadata: read_metadata(path))")
        super().__init__("\n".join(lines))


def save_model(model, path: str | os.PathLike, summary: dict[str, Any] | None = None,
               dtype: torch.dtype = torch.float32) -> None:
    """Write ``model`` (an AEINet) to ``path`` as safetensors.

    summary: JSON-serialisable dict stored in the metadata (training facts).
    dtype: storage dtype of floating-point parameters: float32 (exact), float16 or bfloat16.
    """
    if dtype not in _STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {list(_STORAGE_DTYPES)}, got {dtype}")
    config = getattr(model, "config", None)
    if not isinstance(config, AEINetConfig):
        raise TypeError(f"model must be an AEINet (with an AEINetConfig .config), got {type(model).__name__}")
    try:
        summary_json = json.dumps(summary or {}, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"summary must be JSON-serialisable: {e}") from None
    params = {name for name, _ in model.named_parameters()}
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(dtype if name in params else torch.float32)
        tensors[name] = t.contiguous()
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_json(),
                "summary": summary_json, "dtype": _STORAGE_DTYPES[dtype]}
    save_file(tensors, os.fspath(path), metadata=metadata)


def read_metadata(path: str | os.PathLike) -> tuple[AEINetConfig, dict[str, Any], dict[str, str]]:
    """(config, summary, raw metadata) of a weights file, without loading its tensors."""
    path = os.fspath(path)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an identitydp-fast AEI-Net weights file "
                         f"(metadata format={meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version={meta.get('format_version')!r}; this code "
                         f"reads version {FORMAT_VERSION!r}")
    return AEINetConfig.from_json(meta["config"]), json.loads(meta.get("summary", "{}")), meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the AEINet stored in ``path`` (float32, eval mode) on ``device``.

    Raises WeightsMismatchError listing missing / unexpected / mis-shaped tensors.
    The training summary is attached as ``model.training_summary``.
    """
    from ..reference.aei_net import AEINet

    path = os.fspath(path)
    config, summary, _ = read_metadata(path)
    model = AEINet(config)
    expected = model.state_dict()
    with safe_open(path, framework="pt") as f:
        names = set(f.keys())
        missing = sorted(set(expected) - names)
        unexpected = sorted(names - set(expected))
        mis_shaped, state = [], {}
        for name in sorted(names & set(expected)):
            shape = tuple(f.get_slice(name).get_shape())
            if shape != tuple(expected[name].shape):
                mis_shaped.append((name, shape, tuple(expected[name].shape)))
                continue
            t = f.get_tensor(name)
            state[name] = t.to(torch.float32) if t.is_floating_point() else t
    if missing or unexpected or mis_shaped:
        raise WeightsMismatchError(path, missing, unexpected, mis_shaped)
    model.load_state_dict(state, strict=True)
    model.training_summary = summary
    return model.to(device).eval()
