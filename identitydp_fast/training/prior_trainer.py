"""Training of the prior-based generator (reference/prior_aad.py) on this CPU, resumable.

Data: the prior's own faces (sharp, with their known w): the 256 targets rendered by the full
1024 network and area-downsampled (tools/distil_head256.py caches them in .cache/head256/),
their dlib descriptors computed once. Each step, batch B, the frozen prior inside the generator:

* recon half: (degraded own face, own identity) -> the face. Losses: W+ regression to the
  known w (every layer: ||W+ - w||^2 / 512), L1, dlib-feature perceptual loss;
* swap half: (degraded face A, identity of B, or a DP release of it at a random epsilon through
  the model's bottleneck with the typical-identity post-processing, pipeline/release.py) -> a new face. Losses: the
  centred-cosine identity loss of dlib(real_pipeline(out)) against the injected identity (the
  real-pipeline augmentation makes adversarial textures useless), L1 outside the inner-face
  ellipse (hair, background, outline stay A's).
SFace, the evaluation's judge, is never used here.

Geometry: the prior draws FFHQ-aligned faces; measured with dlib's 5 points on its samples, the
template is the project's crop template with the eyes at PRIOR_EYES_Y = 0.48 of the side
instead of 0.40 (same scale: outer eye corners 0.34 of the side apart). ``prior_template``.

Checkpoint: one file (trainable parameters fp16 + step + config + losses; no optimiser state:
Adam restarts with a short warm-up on resume), overwritten atomically.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..pipeline.align import PRIOR_EYES_Y, crop_template
from ..pipeline.attributes import gaussian_blur, inner_face_mask
from ..pipeline.release import release
from ..reference.mobile_stylegan import load_prior
from ..reference.prior_aad import PriorAADConfig, PriorAADGenerator
from .augment import real_pipeline
from .losses import IdentityLoss, centred_cosine_loss, crop_to_chip_grid, perceptual_loss

def prior_template(size: int) -> torch.Tensor:
    """(5, 2) dlib-order landmarks of the prior's crop of side ``size``, in pixels."""
    return crop_template(size, PRIOR_EYES_Y)


def prior_inner_face_mask(size: int, feather: float = 0.3) -> torch.Tensor:
    """(1, 1, S, S) the attributes stage's inner-face mask on the prior's canvas."""
    return inner_face_mask(size, feather, eyes_y=PRIOR_EYES_Y)


def degrade_prior_crop(crop: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """The attribute input: the inner face blurred (sigma px) through the feathered mask."""
    return crop * (1 - mask) + gaussian_blur(crop, sigma) * mask


def chip_grid(size: int, chip: int = 150) -> torch.Tensor:
    """The grid that cuts dlib's identity chip out of a prior crop of side ``size``."""
    return crop_to_chip_grid(size, chip, template=prior_template(size))


@dataclasses.dataclass
class PriorTrainConfig:
    batch: int = 8
    lr: float = 3e-4
    warmup: int = 50
    sigma: float = 10.0          # inner-face blur at 256 (5 px at 128, DESIGN.md 7b)
    w_reg: float = 1.0
    w_l1: float = 1.0
    w_perc: float = 0.5
    w_id: float = 2.0
    w_outer: float = 1.0
    p_dp: float = 0.5            # share of swap identities that are DP releases
    epsilons: tuple = (1.0, 10.0, 100.0, 1000.0)


class PriorTrainer:
    def __init__(self, cache_dir: Path, checkpoint: Path, cfg: PriorTrainConfig | None = None,
                 model_cfg: PriorAADConfig | None = None, dp_source: Path | None = None):
        self.cfg = cfg or PriorTrainConfig()
        self.checkpoint = Path(checkpoint)
        self.model = PriorAADGenerator(model_cfg or PriorAADConfig(), load_prior())
        if dp_source is not None:  # the public DP statistics of dlib descriptors (training data)
            from ..models.weights import load_model
            src = load_model(dp_source).bottleneck
            for name in ("input_mean", "input_std", "dp_center", "dp_clip", "dp_output_norm"):
                getattr(self.model.bottleneck, name).copy_(getattr(src, name))
        self.cache_dir = Path(cache_dir)
        size = self.model.cfg.size
        self.id_loss = IdentityLoss(size, center=self.model.bottleneck.dp_center)
        self.id_loss.grid = chip_grid(size)
        self.mask = prior_inner_face_mask(size)
        self.loaded: list[Path] = []
        self.w = torch.zeros(0, 512)
        self.targets = torch.zeros(0, 3, size, size, dtype=torch.float16)
        self.ids = torch.zeros(0, 128)
        self.reload()
        self.opt = torch.optim.Adam(self.model.trainable(), lr=self.cfg.lr, betas=(0.5, 0.99))
        self.step, self.log = 0, []
        self.gen = torch.Generator().manual_seed(0)

    def reload(self) -> int:
        """Add the chunks rendered since the last call (chunk 0 is the held-out set)."""
        chunks = sorted(self.cache_dir.glob("chunk[0-9][0-9][0-9][0-9].npz"))
        if len(chunks) < 2:
            raise FileNotFoundError(f"need >= 2 target chunks in {self.cache_dir} (tools/distil_head256.py "
                                    f"renders them; chunk 0 is held out)")
        for p in chunks[1:]:
            if p in self.loaded:
                continue
            d = np.load(p)
            t = torch.from_numpy(d["target"])
            with torch.no_grad():
                ids = torch.cat([self.id_loss.embed(t[i:i + 20].float()) for i in range(0, len(t), 20)])
            self.w = torch.cat([self.w, torch.from_numpy(d["w"])])
            self.targets = torch.cat([self.targets, t])
            self.ids = torch.cat([self.ids, ids])
            self.loaded.append(p)
        return len(self.w)

    def regress_step(self) -> dict:
        """Phase A, no prior in the loop: encoder(degraded face) and mapper(dlib identity) regress
        the face's known w on every W+ layer. Cheap (~1 s per batch of 8 here)."""
        c, m = self.cfg, self.model
        idx = torch.randint(len(self.w), (c.batch,), generator=self.gen)
        target = self.targets[idx].float()
        attr = degrade_prior_crop(target, self.mask, c.sigma)
        _, style = m.encoder(attr)
        wp = m.styles(style, self.ids[idx])
        ids = m.id_index
        loss_attr = (wp - self.w[idx, None]).square().mean()
        loss_id = (wp[:, ids] - self.w[idx, None]).square().mean()
        total = loss_attr + loss_id   # the identity layers count twice: they carry the person
        self._apply(total)
        return {"reg": loss_attr.item(), "reg_id": loss_id.item()}

    def _apply(self, total: torch.Tensor) -> None:
        c = self.cfg
        lr = c.lr * min(1.0, (self.since_resume + 1) / c.warmup)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.trainable(), 5.0)
        self.opt.step()
        self.step += 1
        self.since_resume += 1

    # -- one step ----------------------------------------------------------------------------
    def train_step(self) -> dict:
        c, m = self.cfg, self.model
        b = c.batch
        idx = torch.randint(len(self.w), (b,), generator=self.gen)
        target = self.targets[idx].float()
        if torch.rand((), generator=self.gen) < 0.5:
            target = target.flip(-1)  # mirrored faces: the w no longer fits, so no W+ loss then
            flipped = True
        else:
            flipped = False
        attr = degrade_prior_crop(target, self.mask, c.sigma)
        own = self.ids[idx] if not flipped else self.id_loss.embed(target).detach()
        half = b // 2
        other = self.ids[torch.randint(len(self.w), (b - half,), generator=self.gen)]
        if c.p_dp > 0 and torch.rand((), generator=self.gen) < c.p_dp:
            eps = c.epsilons[int(torch.randint(len(c.epsilons), (), generator=self.gen))]
            other, _ = release(m.bottleneck, other, eps)
        identity = torch.cat([own[:half], other])
        out, wp = m(attr, identity, return_styles=True)
        losses = {}
        rec, tgt = out[:half], target[:half]
        losses["l1"] = F.l1_loss(rec, tgt)
        losses["perc"] = perceptual_loss(self.id_loss.features(rec), self.id_loss.features(tgt))
        if not flipped:
            losses["reg"] = (wp[:half] - self.w[idx[:half], None]).square().mean()
        swap_out = out[half:]
        keep = 1 - self.mask
        losses["outer"] = ((swap_out - target[half:]).abs() * keep).mean() / keep.mean()
        emb = self.id_loss.embed(real_pipeline(out, self.gen))
        losses["id"] = centred_cosine_loss(emb, identity, self.id_loss.center).mean()
        total = (c.w_l1 * losses["l1"] + c.w_perc * losses["perc"] + c.w_reg * losses.get("reg", 0.0)
                 + c.w_outer * losses["outer"] + c.w_id * losses["id"])
        self._apply(total)
        return {k: float(v) for k, v in losses.items()} | {"total": float(total)}

    since_resume = 0

    # -- checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {n: p.detach().clone() for n, p in self.model.named_parameters()
                if not n.startswith("prior.")} | {
            n: b for n, b in self.model.named_buffers() if n.startswith("bottleneck.")}

    def save(self) -> None:
        tmp = self.checkpoint.with_suffix(".tmp")
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        # fp16 parameters keep the one checkpoint in the repository compact (~17 MB);
        # resume casts back to float32 (a rounding of 2^-11 relative, far below a step's change)
        state = {k: v.half() if v.is_floating_point() and not k.startswith("bottleneck.") else v
                 for k, v in self.state().items()}
        torch.save({"state": state, "step": self.step, "train_cfg": dataclasses.asdict(self.cfg),
                    "model_cfg": dataclasses.asdict(self.model.cfg), "log": self.log[-200:]}, tmp)
        tmp.replace(self.checkpoint)

    def resume(self) -> int:
        if not self.checkpoint.exists():
            return 0
        ck = torch.load(self.checkpoint)
        state = {k: v.float() if v.is_floating_point() else v for k, v in ck["state"].items()}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        # the frozen prior comes from its own file; id_index from the config
        bad = [k for k in missing if not k.startswith("prior.") and k != "id_index"]
        if bad or unexpected:
            raise ValueError(f"checkpoint {self.checkpoint} does not fit the model: missing {bad[:5]}, "
                             f"unexpected {unexpected[:5]}")
        self.step, self.log = ck["step"], ck.get("log", [])
        self.gen.manual_seed(self.step)
        return self.step

    def train(self, seconds: float, phase: str = "regress", save_every: int = 50, log_every: int = 10) -> None:
        step_fn = {"regress": self.regress_step, "image": self.train_step}[phase]
        t_end, t0 = time.time() + seconds, time.time()
        while time.time() < t_end:
            if self.step % 200 == 0:
                self.reload()
            row = step_fn()
            self.log.append({"step": self.step, **row})
            if self.step % log_every == 0:
                avg = {k: np.mean([r[k] for r in self.log[-log_every:] if k in r]) for k in row}
                print(f"step {self.step} " + " ".join(f"{k} {v:.4f}" for k, v in avg.items())
                      + f" | {(time.time() - t0) / log_every:.2f} s/step", flush=True)
                t0 = time.time()
            if self.step % save_every == 0:
                self.save()
        self.save()
