"""CUDA-graph capture of an inference function for fixed input shapes.

``CUDAGraphed(fn, *example_args)`` runs ``fn`` a few times on a side stream (cuDNN /
Triton autotuning and allocator warm-up must not happen during capture), then records
one call into a ``torch.cuda.CUDAGraph`` with static input buffers. Calling it copies the
arguments into those buffers, replays the graph (one launch for the whole forward: the
point for batch-1 latency, where kernel launches dominate) and returns a copy of the
static output (so a later replay cannot overwrite what the caller holds).

Valid because every op of the engine forward launches on torch's current stream (the
``_C`` kernels take ``cuda_stream_of(out)``, Triton launches on the current stream) and
allocates nothing outside torch's caching allocator, and the forward has no host
synchronisation or data-dependent shapes. The DP noise is NOT inside a graph: keys change
per call, and a replayed graph would replay the same noise.

Shapes, dtypes and devices of the arguments are fixed at capture; a call with others
raises ValueError naming the argument (build one ``CUDAGraphed`` per batch size).
Equivalence with the eager engine: tests/test_cuda_graph.py (GPU only).
"""
from __future__ import annotations

from typing import Callable

import torch


class CUDAGraphed:
    """A CUDA-graph replay of ``fn(*args)`` for args shaped like ``example_args``."""

    def __init__(self, fn: Callable[..., torch.Tensor], *example_args: torch.Tensor,
                 warmup: int = 3):
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA graphs need a CUDA GPU and a CUDA build of torch")
        if not example_args:
            raise ValueError("give at least one example tensor argument")
        for i, a in enumerate(example_args):
            if not isinstance(a, torch.Tensor) or not a.is_cuda:
                raise ValueError(f"example argument {i} must be a CUDA tensor, got "
                                 f"{type(a).__name__ if not isinstance(a, torch.Tensor) else a.device}")
        self.fn = fn
        self.static_args = [a.detach().clone() for a in example_args]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(max(1, int(warmup))):
                fn(*self.static_args)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.static_out = fn(*self.static_args)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if len(args) != len(self.static_args):
            raise ValueError(f"expected {len(self.static_args)} arguments, got {len(args)}")
        for i, (a, s) in enumerate(zip(args, self.static_args)):
            if not isinstance(a, torch.Tensor) or a.shape != s.shape or a.dtype != s.dtype \
                    or a.device != s.device:
                got = (f"{tuple(a.shape)} {a.dtype} {a.device}" if isinstance(a, torch.Tensor)
                       else type(a).__name__)
                raise ValueError(f"argument {i}: the graph was captured for {tuple(s.shape)} "
                                 f"{s.dtype} {s.device}, got {got}")
        with torch.inference_mode():
            for a, s in zip(args, self.static_args):
                s.copy_(a)
            self.graph.replay()
            return self.static_out.clone()
