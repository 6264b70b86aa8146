"""Time one AEI-Net training step on this CPU (default: fast-128, batch 8, 2 threads).

One step, as training runs it (reference modules, float32, eager):

* generator: y = AEINet(x_att, v) (forward + backward), with
  - adversarial hinge loss through a two-scale PatchGAN (reference.aei_net.PatchDiscriminator),
  - reconstruction loss |y - x|^2,
  - identity loss 1 - cos(e(y) - mu, v - mu): e = identitydp_fast's dlib ResNet reference
    on a differentiable 128 -> 150 chip warp (reference.warp_affine with the chip ->
    crop map of dlib_chip_transform(crop_template(S))), gradients to y only (the ResNet
    is frozen);
  - optionally (--attr-loss) FaceShifter's attribute loss |E(y) - E(x)|^2 (a second
    encoder pass);
* discriminator: hinge loss on x and y.detach() (forward + backward);
* one Adam step for each.

Prints the parameter count, GFLOPs per image of the generator forward (FlopCounterMode,
2 FLOPs per multiply-add), FLOPs of the whole step, and seconds per step (median over
--steps after --warmup), with a breakdown: generator fwd+bwd alone, the full step.

    python tools/time_train_step.py [--config fast-128] [--batch 8] [--threads 2]
                                    [--steps 6] [--no-identity] [--attr-loss] [--json F]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from identitydp_fast.reference.aei_net import AEINet, PatchDiscriminator


def chip_warp_matrix(crop_size: int) -> torch.Tensor:
    """(1, 2, 3) float32: 150x150 dlib chip pixel -> model crop pixel (the crop's own
    landmark template plays the landmarks)."""
    from identitydp_fast.pipeline.align import crop_template, dlib_chip_transform
    return dlib_chip_transform(crop_template(crop_size)).to(torch.float32)


class Step:
    """Everything one training step needs, built once."""

    def __init__(self, config: str, batch: int, identity: bool, attr_loss: bool):
        torch.manual_seed(0)
        self.g = AEINet(config).train()
        self.d = PatchDiscriminator().train()
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.0, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=4e-4, betas=(0.0, 0.999))
        s = self.g.config.crop_size
        self.x = torch.rand(batch, 3, s, s) * 2 - 1          # crops in [-1, 1]
        self.v = torch.randn(batch, 128) * 0.1 + 0.12         # stand-in released identities
        self.mu = self.v.mean(dim=0)
        self.attr_loss = attr_loss
        self.dlib = None
        if identity:
            from identitydp_fast.reference.dlib_resnet import DlibResNet
            from identitydp_fast.reference.warp_affine import warp_affine
            self.dlib = DlibResNet.from_file().eval()
            self.warp = warp_affine
            self.chip_m = chip_warp_matrix(s).expand(batch, 2, 3).contiguous()

    def identity_embedding(self, y: torch.Tensor) -> torch.Tensor:
        """y (N, 3, S, S) in [-1, 1] -> dlib descriptors (N, 128), differentiable in y."""
        img = ((y + 1) * 127.5).permute(0, 2, 3, 1)          # (N, S, S, 3) in [0, 255]
        chips = self.warp(img, self.chip_m, 150, 150)         # (N, 3, 150, 150)
        return self.dlib(chips)

    def generator_only(self) -> None:
        """Generator forward + backward with a reconstruction loss (no D, no identity)."""
        self.opt_g.zero_grad(set_to_none=True)
        y = self.g(self.x, self.v)
        F.mse_loss(y, self.x).backward()

    def full(self) -> None:
        g, d = self.g, self.d
        # ---- generator step
        self.opt_g.zero_grad(set_to_none=True)
        z_att = g.attributes(self.x)
        y = g.generator(z_att, g.bottleneck(self.v))
        loss = sum(-o.mean() for o in d(y)) + 10.0 * F.mse_loss(y, self.x)
        if self.attr_loss:
            z_y = g.attributes(y)
            loss = loss + 10.0 * sum(F.mse_loss(a, b.detach()) for a, b in zip(z_y, z_att))
        if self.dlib is not None:
            e = self.identity_embedding(y)
            loss = loss + 5.0 * (1 - F.cosine_similarity(e - self.mu, self.v - self.mu)).mean()
        loss.backward()
        self.opt_g.step()
        # ---- discriminator step (hinge)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = (sum(F.relu(1 - o).mean() for o in d(self.x))
                  + sum(F.relu(1 + o).mean() for o in d(y.detach())))
        loss_d.backward()
        self.opt_d.step()


def timed(fn, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="fast-128")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-identity", action="store_true", help="skip the dlib identity loss")
    ap.add_argument("--attr-loss", action="store_true", help="add FaceShifter's attribute loss")
    ap.add_argument("--json", help="write the record here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    step = Step(a.config, a.batch, not a.no_identity, a.attr_loss)
    g = step.g
    s = g.config.crop_size
    params = sum(p.numel() for p in g.parameters())
    parts = {k: sum(p.numel() for p in getattr(g, k).parameters())
             for k in ("encoder", "bottleneck", "generator")}
    d_params = sum(p.numel() for p in step.d.parameters())

    with FlopCounterMode(display=False) as fc:  # generator forward, batch 1
        g.eval()
        g(step.x[:1], step.v[:1])
        g.train()
    gflops_fwd = fc.get_total_flops() / 1e9
    with FlopCounterMode(display=False) as fc:  # one whole step
        step.full()
    gflops_step = fc.get_total_flops() / 1e9 / a.batch

    t_gen = timed(step.generator_only, a.steps, a.warmup)
    t_full = timed(step.full, a.steps, a.warmup)
    rec = {
        "config": a.config, "crop_size": s, "batch": a.batch, "threads": a.threads,
        "params": params, "params_by_part": parts, "discriminator_params": d_params,
        "gflops_per_image_forward": gflops_fwd, "gflops_per_image_train_step": gflops_step,
        "identity_loss": not a.no_identity, "attr_loss": a.attr_loss,
        "seconds_generator_fwd_bwd": statistics.median(t_gen),
        "seconds_per_step": statistics.median(t_full),
        "seconds_per_step_all": t_full,
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    print(f"config {a.config} ({s}x{s}), batch {a.batch}, {a.threads} threads, torch {torch.__version__}")
    print(f"  parameters          {params / 1e6:.2f} M  ({', '.join(f'{k} {v / 1e6:.2f} M' for k, v in parts.items())};"
          f" discriminator {d_params / 1e6:.2f} M)")
    print(f"  forward GFLOPs/img  {gflops_fwd:.3f}  (whole training step: {gflops_step:.2f} GFLOPs/img)")
    print(f"  generator fwd+bwd   {rec['seconds_generator_fwd_bwd']:.3f} s / step (median of {a.steps})")
    extras = "G + D" + (" + dlib identity loss" if not a.no_identity else "") + (
        " + attribute loss" if a.attr_loss else "")
    print(f"  full step ({extras}) {rec['seconds_per_step']:.3f} s / step "
          f"(min {min(t_full):.3f}, max {max(t_full):.3f}); {a.batch / rec['seconds_per_step']:.1f} img/s")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rec, fh, indent=2)
    return rec


if __name__ == "__main__":
    main()
