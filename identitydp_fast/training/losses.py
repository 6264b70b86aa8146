"""Training objectives of the AEI-Net (FaceShifter-style, DESIGN.md 7b).

* ``d_hinge_loss`` / ``g_hinge_loss``: hinge GAN losses summed over the scales of the
  multi-scale PatchGAN (each scale's logit map averaged). At chance (all logits 0) the
  discriminator loss is 2 per scale.
* ``attribute_loss``: 0.5 * sum over levels of the mean squared difference between the
  attribute maps of the output and of the target (FaceShifter's L_att).
* ``IdentityLoss``: the dlib descriptor of the output, through a differentiable
  crop -> 150x150 chip warp (the chip matrix in crop pixels is fixed by the crop
  template: ``dlib_chip_transform(crop_template(S))``), compared with the injected identity
  by a CENTRED cosine: both put on the unit sphere, the model's public centre mu
  (``bottleneck.dp_center``) subtracted, 1 - cos. dlib's unit vectors share one strong
  direction (mean cosine 0.83 between people), so the plain cosine barely moves; the
  centred one was required (DESIGN.md 7b). Also ``features``: the dlib net's
  intermediate activations, used as a face-trained perceptual loss on reconstructions.
* ``reconstruction_loss``: L1 on the samples whose source identity is their own.
* ``perceptual_loss``: normalised L1 between dlib feature maps of output and target.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..pipeline.align import crop_template, dlib_chip_transform

CHIP_SIZE = 150
#: dlib blocks after which ``IdentityLoss.features`` taps the activations (0-based, of 14):
#: 35x35 (block 2), 17x17 (block 5), 8x8 (block 8)
DEFAULT_FEATURE_BLOCKS = (2, 5, 8)


def d_hinge_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
                 ) -> torch.Tensor:
    """sum_scales mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean()
               for r, f in zip(real_logits, fake_logits))


def g_hinge_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """sum_scales -mean(D(fake))."""
    return sum(-f.mean() for f in fake_logits)


def attribute_loss(z_out: Sequence[torch.Tensor], z_target: Sequence[torch.Tensor]
                   ) -> torch.Tensor:
    """0.5 sum_k mean((z_out_k - z_target_k)^2); the target maps are detached."""
    if len(z_out) != len(z_target):
        raise ValueError(f"need as many output as target levels, got {len(z_out)} and {len(z_target)}")
    return 0.5 * sum(F.mse_loss(a, b.detach()) for a, b in zip(z_out, z_target))


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                        ) -> torch.Tensor:
    """Mean L1 over the samples where ``mask`` (N,) bool is set; 0 (with a graph) if none."""
    if not bool(mask.any()):
        return output.sum() * 0.0
    return F.l1_loss(output[mask], target[mask])


def centred_cosine_loss(embedding: torch.Tensor, identity: torch.Tensor,
                        center: torch.Tensor | None) -> torch.Tensor:
    """(N,) 1 - cos(e / |e| - mu, v / |v| - mu): 0 for identical directions."""
    e = F.normalize(embedding, dim=1)
    v = F.normalize(identity.to(embedding.dtype), dim=1)
    if center is not None:
        mu = center.to(embedding.dtype).view(1, -1)
        e, v = e - mu, v - mu
    return 1 - F.cosine_similarity(e, v, dim=1, eps=1e-8)


def crop_to_chip_grid(crop_size: int, chip_size: int = CHIP_SIZE,
                      template: torch.Tensor | None = None) -> torch.Tensor:
    """(1, chip, chip, 2) grid_sample grid (align_corners=True) sampling the dlib chip of
    the template face out of a model crop of side ``crop_size`` (``template``: the crop's
    (5, 2) landmarks in pixels; default ``crop_template(crop_size)``)."""
    template = crop_template(crop_size) if template is None else template
    m = dlib_chip_transform(template, chip_size)[0]   # chip px -> crop px
    r = torch.arange(chip_size, dtype=torch.float64).view(chip_size, 1)
    c = torch.arange(chip_size, dtype=torch.float64).view(1, chip_size)
    x = m[0, 0] * c + m[0, 1] * r + m[0, 2]
    y = m[1, 0] * c + m[1, 1] * r + m[1, 2]
    grid = torch.stack([2 * x / (crop_size - 1) - 1, 2 * y / (crop_size - 1) - 1], dim=-1)
    return grid.unsqueeze(0).to(torch.float32)


class IdentityLoss(nn.Module):
    """dlib identity of generated crops and the centred-cosine identity loss.

    Args:
        crop_size: S of the model crops.
        center: (128,) the public centre mu of unit descriptors (the model's dp_center).
        net: a DlibResNet (default: ``DlibResNet.from_file()``), frozen.
    """

    def __init__(self, crop_size: int, center: torch.Tensor | None = None, net=None):
        super().__init__()
        if net is None:
            from ..reference.dlib_resnet import DlibResNet
            net = DlibResNet.from_file()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.crop_size = int(crop_size)
        self.register_buffer("grid", crop_to_chip_grid(self.crop_size))
        self.register_buffer("center", torch.zeros(128) if center is None
                             else torch.as_tensor(center, dtype=torch.float32).clone())

    def train(self, mode: bool = True):  # the dlib net is always in eval mode
        super().train(mode)
        self.net.eval()
        return self

    def chips(self, crops: torch.Tensor) -> torch.Tensor:
        """crops (N, 3, S, S) in [-1, 1] -> chips (N, 3, 150, 150) in [0, 255],
        differentiable (bilinear, zeros outside the crop)."""
        grid = self.grid.to(crops.dtype).expand(crops.shape[0], -1, -1, -1)
        chips = F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=True)
        return (chips + 1) * 127.5

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """crops (N, 3, S, S) in [-1, 1] -> dlib descriptors (N, 128)."""
        return self.net(self.chips(crops))

    def features(self, crops: torch.Tensor, blocks: Sequence[int] = DEFAULT_FEATURE_BLOCKS
                 ) -> list[torch.Tensor]:
        """The dlib net's activations after the given residual blocks (0-based)."""
        net = self.net
        x = self.chips(crops).contiguous(memory_format=torch.channels_last)
        x = (x - net.input_mean) / 256.0
        x = torch.relu(net.stem_affine(net.stem_conv(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        out, last = [], max(blocks)
        for i, block in enumerate(net.blocks):
            x = block(x)
            if i in blocks:
                out.append(x)
            if i >= last:
                break
        return out

    def forward(self, crops: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """Mean centred-cosine loss between dlib(crops) and ``identity`` (N, 128)."""
        return centred_cosine_loss(self.embed(crops), identity, self.center).mean()


def perceptual_loss(feats_out: Sequence[torch.Tensor], feats_target: Sequence[torch.Tensor]
                    ) -> torch.Tensor:
    """sum_levels mean|f_out - f_t| / mean|f_t| (each level normalised to its scale)."""
    return sum((a - b.detach()).abs().mean() / b.detach().abs().mean().clamp_min(1e-6)
               for a, b in zip(feats_out, feats_target))
