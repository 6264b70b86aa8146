"""The fused ops registered with torch.library, so torch.compile and CUDA-graph capture
can trace through them.

Each op is a ``torch.library.custom_op`` (namespace ``identitydp``) whose real
implementation dispatches to the chosen backend, with a ``register_fake`` rule that
gives the output's shape, dtype and memory format without computing it. Engine models
call these, never the backends directly.
"""
from __future__ import annotations

import torch

from . import aad as _aad
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


def _like_channels_last(t: torch.Tensor, shape) -> torch.Tensor:
    return t.new_empty(shape).contiguous(memory_format=torch.channels_last)


@torch.library.custom_op("identitydp::instance_norm", mutates_args=())
def instance_norm(h: torch.Tensor, eps: float, backend: str) -> torch.Tensor:
    """Instance norm over (H, W); see identitydp_fast/ops/aad.py. Channels-last result."""
    return _aad.instance_norm(h, eps, backend).contiguous(memory_format=torch.channels_last)


@instance_norm.register_fake
def _(h, eps, backend):
    return _like_channels_last(h, h.shape)


@torch.library.custom_op("identitydp::aad_blend_relu", mutates_args=())
def aad_blend_relu(h_hat: torch.Tensor, gamma_att: torch.Tensor, beta_att: torch.Tensor,
                   gamma_id: torch.Tensor, beta_id: torch.Tensor, mask_logits: torch.Tensor,
                   relu: bool, backend: str) -> torch.Tensor:
    """The AAD blend (+ ReLU); see identitydp_fast/ops/aad.py. Channels-last result."""
    out = _aad.aad_blend_relu(h_hat, gamma_att, beta_att, gamma_id, beta_id, mask_logits,
                              relu=relu, backend=backend)
    return out.contiguous(memory_format=torch.channels_last)


@aad_blend_relu.register_fake
def _(h_hat, gamma_att, beta_att, gamma_id, beta_id, mask_logits, relu, backend):
    return _like_channels_last(h_hat, h_hat.shape)


@torch.library.custom_op("identitydp::upsample_bilinear2x", mutates_args=())
def upsample_bilinear2x(x: torch.Tensor, backend: str) -> torch.Tensor:
    """Bilinear x2 (align_corners=False); see identitydp_fast/ops/aad.py."""
    return _aad.upsample_bilinear2x(x, backend=backend).contiguous(memory_format=torch.channels_last)


@upsample_bilinear2x.register_fake
def _(x, backend):
    n, c, h, w = x.shape
    return _like_channels_last(x, (n, c, 2 * h, 2 * w))


# --- the prior engine's ops (identitydp_fast/ops/prior.py) ----------------------------

@torch.library.custom_op("identitydp::prior_dwconv3x3", mutates_args=())
def prior_dwconv3x3(x: torch.Tensor, style: torch.Tensor, weight: torch.Tensor,
                    backend: str) -> torch.Tensor:
    """depthwise3x3(x * style); see identitydp_fast/ops/prior.py. Channels-last result."""
    from . import prior as _prior
    return _prior.modulated_dwconv3x3(x, style, weight, backend).contiguous(memory_format=torch.channels_last)


@prior_dwconv3x3.register_fake
def _(x, style, weight, backend):
    return _like_channels_last(x, x.shape)


@torch.library.custom_op("identitydp::prior_inverse_haar", mutates_args=())
def prior_inverse_haar(x: torch.Tensor, style: torch.Tensor, backend: str) -> torch.Tensor:
    """inverse_haar(x * style); see identitydp_fast/ops/prior.py. Channels-last result."""
    from . import prior as _prior
    return _prior.modulated_inverse_haar(x, style, backend).contiguous(memory_format=torch.channels_last)


@prior_inverse_haar.register_fake
def _(x, style, backend):
    n, c4, h, w = x.shape
    return _like_channels_last(x, (n, c4 // 4, 2 * h, 2 * w))


@torch.library.custom_op("identitydp::prior_epilogue_", mutates_args=("y",))
def prior_epilogue_(y: torch.Tensor, bias: torch.Tensor, noise: torch.Tensor | None,
                    backend: str) -> None:
    """y <- leaky_relu((y + noise) + bias, 0.2) in place; y channels-last contiguous (the
    engine's GEMM output). See identitydp_fast/ops/prior.py."""
    from . import prior as _prior
    if not y.is_contiguous(memory_format=torch.channels_last):
        raise ValueError("prior_epilogue_ writes in place: y must be channels-last contiguous")
    _prior.bias_noise_lrelu(y, bias, noise, backend, inplace=True)


@prior_epilogue_.register_fake
def _(y, bias, noise, backend):
    return None
