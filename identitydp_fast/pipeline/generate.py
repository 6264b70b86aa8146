"""Generate (pipeline stage 7): model loading and the generator call.

* ``load_model(model, device)``: the packaged default (``DEFAULT_MODEL_PATH``, or
  ``$IDP_WEIGHTS``), a weights file (an AEI-Net file, models/weights.py, or a prior-256
  file, models/prior_weights.py, told apart by the file's format metadata) or an in-memory
  ``AEINet`` / ``PriorMixGenerator``, checked (readable, finite weights), in eval mode on
  ``device``;
* ``check_options(device, backend, dtype, cuda_graph_batches)``: what the generator call
  can run with, checked before anything is loaded;
* ``Generator(model, backend, device, dtype, graph_batches)``: (N, 3, S, S) attribute
  input (pipeline/attributes.py) + (N, 128) released identities -> (N, S, S, 3) float32
  CPU pixels in [0, 255]. On the cpu/cuda/triton backends the engine runs: ``EngineAEINet``
  for AEI-Nets, ``EnginePriorMix`` (engine/prior_mix.py: fused prior ops between GEMMs;
  float32, no CUDA graphs yet) for the prior-256 model; 'reference' runs the PyTorch
  reference of either; face counts in
  ``graph_batches`` replay a CUDA graph (engine/cuda_graph.py), serialised by a lock (its
  buffers are shared), so threads stay safe.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import torch

#: the packaged model (shipped with the trained release; ``$IDP_WEIGHTS`` overrides it)
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "weights" / "prior-256.safetensors"
WEIGHTS_ENV = "IDP_WEIGHTS"


def packaged_models() -> dict[str, Path]:
    """name -> weights file of the models shipped in identitydp_fast/weights/ (e.g.
    'fast-128', 'prior-256'; the face prior alone and the face detectors are not models)."""
    from ..models.detector_weights import NAMES as DETECTORS

    folder = DEFAULT_MODEL_PATH.parent
    return {p.stem: p for p in sorted(folder.glob("*.safetensors"))
            if p.stem != "mobile-stylegan" and p.stem not in DETECTORS}


def resolve_model_path(model) -> Path:
    """The weights file ``model`` (None: ``$IDP_WEIGHTS`` or the packaged default; a
    packaged model's name, ``packaged_models()``, when no such file exists) names."""
    if model is None:
        env = os.environ.get(WEIGHTS_ENV)
        path = Path(env) if env else DEFAULT_MODEL_PATH
        if not path.is_file():
            where = f"${WEIGHTS_ENV}" if env else "the packaged default model"
            raise FileNotFoundError(
                f"no model weights at {path} ({where}): pass model=PATH to a trained "
                f"identitydp-fast AEI-Net .safetensors file"
                + ("" if env else f" or set ${WEIGHTS_ENV}"))
        return path
    path = Path(os.fspath(model))
    if not path.exists() and str(model) in packaged_models():
        return packaged_models()[str(model)]
    if not path.exists():
        raise FileNotFoundError(f"model weights file {path} does not exist (packaged models: "
                                f"{', '.join(sorted(packaged_models())) or 'none'})")
    if not path.is_file():
        raise ValueError(f"model={str(path)!r} is not a file (pass the .safetensors weights file)")
    return path


def is_prior_model(model) -> bool:
    """True for the prior-256 model (reference/prior_mix.py), False for an AEI-Net."""
    from ..reference.prior_mix import PriorMixGenerator
    return isinstance(model, PriorMixGenerator)


def load_model(model, device: torch.device):
    """(AEINet or PriorMixGenerator in eval mode on device, its path or None)."""
    from ..models import prior_weights
    from ..models.weights import load_model as load_weights
    from ..reference.aei_net import AEINet

    if isinstance(model, AEINet) or is_prior_model(model):
        return model.to(device).eval(), None
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be None, a path to a weights file, an AEINet or a "
                        f"PriorMixGenerator, got {type(model).__name__}")
    path = resolve_model_path(model)
    if prior_weights.is_prior_mix_file(path):
        return prior_weights.load_mix_generator(path, device), path
    try:
        net = load_weights(path, device)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # safetensors raises its own error type on a corrupt header
        if str(path) in str(exc):
            raise
        raise ValueError(f"cannot load model weights {path}: {exc}") from exc
    for name, t in net.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"model weights {path} hold NaN or inf in {name}: the file is broken")
    return net, path


def check_prior_options(model, dtype: torch.dtype, graph_batches: Sequence[int]) -> None:
    """ValueError for the options the prior-256 model cannot run yet (its engine is
    float32 and not captured in CUDA graphs)."""
    if is_prior_model(model) and (dtype != torch.float32 or graph_batches):
        raise ValueError(f"model {model.config.name!r} runs in float32 without CUDA graphs "
                         f"(engine/prior_mix.py): dtype must be torch.float32 and "
                         f"cuda_graph_batches empty, got dtype={dtype}, "
                         f"cuda_graph_batches={list(graph_batches)}")


def check_options(device: torch.device, backend: str, dtype: torch.dtype,
                  cuda_graph_batches: Sequence[int]) -> list[int]:
    """The sorted CUDA-graph face counts, or ValueError: half precision needs 'triton', CUDA
    graphs a GPU engine backend on a CUDA device."""
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype!r}")
    if dtype != torch.float32 and backend != "triton":
        raise ValueError(f"dtype={dtype} needs backend='triton' (its kernels take half "
                         f"precision; the {backend!r} path is float32-only)")
    graph_batches = sorted({int(b) for b in cuda_graph_batches})
    if graph_batches and (device.type != "cuda" or backend not in ("cuda", "triton")):
        raise ValueError("cuda_graph_batches needs device='cuda' and backend 'cuda' or "
                         f"'triton', got device={device}, backend={backend!r}")
    if any(b < 1 for b in graph_batches):
        raise ValueError(f"cuda_graph_batches must be positive face counts, got {graph_batches}")
    return graph_batches


class Generator:
    """The generator call of one loaded model (see the module docstring)."""

    def __init__(self, model, backend: str, device: torch.device,
                 dtype: torch.dtype = torch.float32, graph_batches: Sequence[int] = (),
                 name: str = "in memory"):
        self.backend, self.device, self.name = backend, device, name
        check_prior_options(model, dtype, graph_batches)
        if backend == "reference":
            self.net = model
        elif is_prior_model(model):
            from ..engine.prior_mix import EnginePriorMix
            self.net = EnginePriorMix(model, backend).to(device).eval()
        else:
            from ..engine.aei_net import EngineAEINet
            self.net = EngineAEINet(model, backend, dtype).to(device).eval()
        self._graphs = {}
        s = int(model.config.crop_size)
        for b in graph_batches:
            from ..engine.cuda_graph import CUDAGraphed
            graphed = CUDAGraphed(self.net.generate, torch.zeros(b, 3, s, s, device=device),
                                  torch.zeros(b, 128, device=device))
            self._graphs[b] = (graphed, threading.Lock())

    def __call__(self, x_att: torch.Tensor, identities: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) attribute input on ``device`` + (N, 128) identities -> (N, S, S, 3)
        float32 CPU in [0, 255]; RuntimeError when the network produced NaN or inf."""
        with torch.inference_mode():
            graph = self._graphs.get(int(x_att.shape[0]))
            if graph is not None:
                graphed, lock = graph
                with lock:
                    y = graphed(x_att, identities.to(self.device, torch.float32))
            else:
                y = self.net(x_att, identities.to(self.device))
        if not bool(torch.isfinite(y).all()):
            raise RuntimeError(f"the generator produced NaN or inf (model {self.name}, "
                               f"backend {self.backend}); nothing was pasted")
        return ((y.float() + 1.0) * 127.5).clamp(0, 255).permute(0, 2, 3, 1).cpu()
