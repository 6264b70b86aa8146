"""The fused ops registered with torch.library, so torch.compile and CUDA-graph capture
can trace through them.

Each op is a ``torch.library.custom_op`` (namespace ``identitydp``) whose real
implementation dispatches to the chosen backend, with a ``register_fake`` rule that
gives the output's shape, dtype and memory format without computing it. Engine models
call these, never the backends directly.
"""
from __future__ import annotations

import torch

from . import residual_add as _residual_add


@torch.library.custom_op("identitydp::residual_add_relu", mutates_args=())
def residual_add_relu(main: torch.Tensor, shortcut: torch.Tensor, pool_shortcut: bool,
                      backend: str) -> torch.Tensor:
    """relu(zero_fill(main) + zero_fill(pool ? avgpool2x2(shortcut) : shortcut)); see
    identitydp_fast/ops/residual_add.py. Returns a channels-last (N, C, H, W) tensor."""
    out = _residual_add.residual_add_relu(main, shortcut, pool_shortcut, backend)
    return out.contiguous(memory_format=torch.channels_last)


@residual_add_relu.register_fake
def _(main, shortcut, pool_shortcut, backend):
    shape = _residual_add.output_shape(main, shortcut, pool_shortcut)
    return main.new_empty(shape).contiguous(memory_format=torch.channels_last)
