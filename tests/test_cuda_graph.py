"""CUDA-graph replay of the engine generator (identitydp_fast/engine/cuda_graph.py)
against the eager engine, per GPU backend and dtype; and its errors."""
from __future__ import annotations

import pytest
import torch

from identitydp_fast import _backends
from identitydp_fast.engine.aei_net import EngineAEINet
from identitydp_fast.engine.cuda_graph import CUDAGraphed
from identitydp_fast.reference.aei_net import AEINet

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_needs_a_gpu():
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA GPU"):
        CUDAGraphed(lambda x: x, torch.zeros(1))


@gpu
@pytest.mark.parametrize("backend,dtype", [("cuda", torch.float32), ("triton", torch.float32),
                                           ("triton", torch.float16), ("triton", torch.bfloat16)])
@pytest.mark.parametrize("batch", [1, 3])
def test_graph_replay_matches_eager(backend, dtype, batch):
    if not _backends.available(backend, "cuda"):
        pytest.skip(f"backend {backend} unavailable on cuda")
    torch.manual_seed(0)
    engine = EngineAEINet(AEINet("fast-128").eval(), backend, dtype).cuda()
    gen = torch.Generator().manual_seed(batch)
    crops = [(torch.rand(batch, 3, 128, 128, generator=gen) * 2 - 1).cuda() for _ in range(3)]
    ids = [torch.randn(batch, 128, generator=gen).cuda() for _ in range(3)]
    graphed = CUDAGraphed(engine.generate, crops[0], ids[0])
    with torch.inference_mode():
        for c, i in zip(crops, ids):   # new inputs each call: the static buffers are refilled
            want = engine.generate(c, i)
            got = graphed(c, i)
            assert torch.allclose(got, want, atol=1e-6, rtol=0), (got - want).abs().max()
    first = graphed(crops[0], ids[0])
    graphed(crops[1], ids[1])
    assert not torch.equal(first, graphed.static_out)   # callers get copies
    with pytest.raises(ValueError, match="argument 0: the graph was captured for"):
        graphed(crops[0][:1] if batch > 1 else torch.cat([crops[0]] * 2), ids[0])
