"""The AEI-Net trainer (reference PyTorch, CPU or GPU): see ``Trainer``.

One step (batch B of training crops x with dlib descriptors e):

1. sources: with probability ``p_rec`` a sample keeps its own identity (reconstruction),
   otherwise it takes another sample's descriptor (swap);
2. with probability ``p_dp`` the injected identity is privatised by the model's own
   epsilon-IdentityDP (``pipeline.release.privatise``) at epsilon ~ log-uniform
   [``eps_min``, ``eps_max``] (default [10, 1000]): the generator learns what inference
   feeds it;
3. y = G(E(degrade_inner_face(x)), B(v)) (attribute input with the inner face blurred,
   DESIGN.md section 1);
4. D step(s): hinge on D(x) vs D(y.detach()), ``d_steps`` per G step at ``lr_d``
   (higher than ``lr_g``: DESIGN.md 7b, the prototype's D never left chance);
5. G step: loss = w_adv L_adv + w_att L_att + w_id L_id + w_rec L_rec + w_perc L_perc
   (see ``DEFAULT_WEIGHTS``), where L_id goes through ``real_pipeline`` (random blur /
   resize / noise / JPEG-like) before the dlib net, and L_rec / L_perc only count on
   own-identity samples without DP noise;
6. EMA of the generator's weights (the exported model).

The DP centre mu, the clip radius C and the whitening statistics are set once from the
TRAINING descriptors before the first step (``identity_statistics``, ``suggested_clip``)
and travel in the model's buffers (checkpoints and the exported weights).
"""
from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..models.weights import save_model
from ..reference.aei_net import AEINet, PatchDiscriminator
from .data import CropDataset, identity_statistics, suggested_clip
from ..pipeline.attributes import default_sigma, degrade_inner_face
from ..pipeline.release import release
from .augment import real_pipeline
from .losses import (IdentityLoss, attribute_loss, d_hinge_loss, g_hinge_loss,
                     perceptual_loss, reconstruction_loss)

#: loss weights. adv 1 / att 10 / id 5 / rec 10 follow FaceShifter; id stays at 5
#: (DESIGN 7b: 20 made the generator paint adversarial patches); perc (dlib features,
#: each level normalised to ~1) adds a face-trained realism signal on reconstructions.
DEFAULT_WEIGHTS = {"adv": 1.0, "att": 10.0, "id": 5.0, "rec": 10.0, "perc": 1.0}
LOSS_KEYS = ("d", "adv", "att", "id", "rec", "perc", "g")
CHECKPOINT_FORMAT = 1


def _atomic_save(obj, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """Train an AEI-Net on a crop cache (``build_crop_cache``).

    Args:
        cache_dir: the crop cache (its ``train`` split is used).
        out_dir: where checkpoints and sample grids go.
        config: AEINet config name or AEINetConfig.
        batch_size, lr_g, lr_d, d_steps: optimisation (Adam, betas (0, 0.999)).
        seed: all sampling (batches, swaps, DP keys, pipeline noise) is reproducible.
        p_rec: probability that a sample's source identity is its own.
        p_dp: probability that the injected identity is DP-noised.
        eps_range: (min, max) of the log-uniform epsilon of the DP steps.
        degrade_sigma: blur of the attribute input's inner face (None: 5 px at S = 128).
        weights: overrides of DEFAULT_WEIGHTS.
        ema_decay: EMA of the generator weights.
        use_pipeline: put ``real_pipeline`` before the identity net.
        log_every: print averaged losses every this many steps (no tqdm dependency).
        device: 'cpu' or 'cuda'.
        typical_identity: DP steps feed the generator the release post-processed onto
            the shell of typical identities, as the Anonymizer does (pipeline.release.release).
    """

    def __init__(self, cache_dir, out_dir, config="fast-128", batch_size: int = 8,
                 lr_g: float = 1e-4, lr_d: float = 4e-4, d_steps: int = 1, seed: int = 0,
                 p_rec: float = 0.3, p_dp: float = 0.3, eps_range=(10.0, 1000.0),
                 degrade_sigma: float | None = None, weights: dict | None = None,
                 ema_decay: float = 0.999, use_pipeline: bool = True, log_every: int = 10,
                 device: str = "cpu", verbose: bool = True, identity_net=None,
                 typical_identity: bool = True):
        self.cache_dir, self.out_dir = Path(cache_dir), Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.p_rec, self.p_dp = float(p_rec), float(p_dp)
        self.eps_range = (float(eps_range[0]), float(eps_range[1]))
        self.d_steps, self.ema_decay = int(d_steps), float(ema_decay)
        self.use_pipeline, self.log_every, self.verbose = use_pipeline, int(log_every), verbose
        self.weights = dict(DEFAULT_WEIGHTS, **(weights or {}))
        self.typical_identity = bool(typical_identity)
        self.lr_g, self.lr_d = float(lr_g), float(lr_d)

        # ---- data (uint8 crops kept in memory, converted per batch)
        ds = CropDataset(self.cache_dir, "train")
        self.dataset = ds
        self.crops = torch.from_numpy(np.concatenate([np.asarray(c) for c in ds._crops]))
        self.descriptors = torch.from_numpy(ds.descriptors.astype(np.float32))
        self.n_train = len(ds)
        if self.n_train < 2:
            raise ValueError(f"need at least 2 training crops in {cache_dir}, got {self.n_train}")
        self.data_sizes = {}
        for p in ds.paths:
            s = p.split("/", 1)[0]
            self.data_sizes[s] = self.data_sizes.get(s, 0) + 1

        # ---- models
        torch.manual_seed(self.seed)
        self.g = AEINet(config).to(self.device).train()
        self.config = self.g.config
        if ds.size != self.config.crop_size:
            raise ValueError(f"cache crops are {ds.size} px, config {self.config.name} wants "
                             f"{self.config.crop_size}")
        self.degrade_sigma = (default_sigma(self.config.crop_size) if degrade_sigma is None
                              else float(degrade_sigma))
        # DP centre / clip / whitening from TRAINING descriptors only
        stats = identity_statistics(self.descriptors.numpy())
        clip = suggested_clip(stats)
        self.g.bottleneck.set_identity_statistics(self.descriptors, clip=clip)
        self.dp_summary = {
            "source": f"train split of {self.cache_dir.name} ({self.n_train} descriptors)",
            "count": stats["count"], "mean_unit_norm": stats["mean_unit_norm"],
            "residual_l1_quantiles": stats["residual_l1_quantiles"],
            "norm_mean": stats["norm_mean"], "clip": clip,
            "clip_rule": "0.99 quantile of ||u - mu||_1 over training descriptors, rounded "
                         "up to a multiple of 0.5 (suggested_clip); Delta_1 = 2C holds for "
                         "every input because the residual is clipped",
            "output_norm": float(self.g.bottleneck.dp_output_norm)}
        self.d = PatchDiscriminator().to(self.device).train()
        self.ema = copy.deepcopy(self.g).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.id_loss = IdentityLoss(self.config.crop_size, self.g.bottleneck.dp_center.cpu(),
                                    net=identity_net).to(self.device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=self.lr_g, betas=(0.0, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=self.lr_d, betas=(0.0, 0.999))

        # ---- randomness and bookkeeping
        self.rng = np.random.default_rng(self.seed)
        self.torch_gen = torch.Generator().manual_seed(self.seed + 1)
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict] = []   # one dict of losses per step
        self._dp_backend = "auto"
        self.init_summary = None   # set by init_from_weights

    # ---- one step ------------------------------------------------------------------------
    def _batch(self):
        b, n = self.batch_size, self.n_train
        idx = self.rng.integers(0, n, b)
        rec = self.rng.random(b) < self.p_rec
        src = np.where(rec, idx, self.rng.integers(0, n, b))
        rec = src == idx
        dp = self.rng.random(b) < self.p_dp
        log_lo, log_hi = math.log(self.eps_range[0]), math.log(self.eps_range[1])
        eps = np.exp(self.rng.uniform(log_lo, log_hi, b))
        keys = [self.rng.bytes(32) for _ in range(b)]
        x = self.crops[idx].to(self.device).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0
        v = self.descriptors[src].clone()
        for i in np.flatnonzero(dp):
            # what inference feeds the generator: the release, post-processed onto the
            # shell of typical identities (pipeline.release.release; same guarantee)
            v[i:i + 1], _ = release(self.g.bottleneck, v[i:i + 1], float(eps[i]), key=keys[i],
                                    backend=self._dp_backend, typical=self.typical_identity)
        return x, v.to(self.device), torch.from_numpy(rec & ~dp).to(self.device), dp, eps

    def train_step(self) -> dict:
        """One D + G update; returns the step's losses (floats)."""
        t0 = time.perf_counter()
        w = self.weights
        x, v, rec_mask, dp, eps = self._batch()
        g, d = self.g, self.d
        x_att = degrade_inner_face(x, self.degrade_sigma)
        z_att = g.attributes(x_att)
        y = g.generator(z_att, g.bottleneck(v))

        # ---- discriminator
        for p in d.parameters():
            p.requires_grad_(True)
        y_fake = y.detach()
        for _ in range(self.d_steps):
            self.opt_d.zero_grad(set_to_none=True)
            loss_d = d_hinge_loss(d(x), d(y_fake))
            loss_d.backward()
            self.opt_d.step()
        for p in d.parameters():
            p.requires_grad_(False)

        # ---- generator
        self.opt_g.zero_grad(set_to_none=True)
        l_adv = g_hinge_loss(d(y))
        l_att = attribute_loss(g.attributes(degrade_inner_face(y, self.degrade_sigma)), z_att)
        y_id = real_pipeline(y, self.torch_gen) if self.use_pipeline else y
        l_id = self.id_loss(y_id, v)
        l_rec = reconstruction_loss(y, x, rec_mask)
        if w["perc"] > 0 and bool(rec_mask.any()):
            with torch.no_grad():
                f_t = self.id_loss.features(x[rec_mask])
            l_perc = perceptual_loss(self.id_loss.features(y[rec_mask]), f_t)
        else:
            l_perc = y.sum() * 0.0
        loss_g = (w["adv"] * l_adv + w["att"] * l_att + w["id"] * l_id + w["rec"] * l_rec
                  + w["perc"] * l_perc)
        loss_g.backward()
        self.opt_g.step()
        self._update_ema()

        self.step += 1
        self.seconds += time.perf_counter() - t0
        rec = {"d": loss_d.item(), "adv": l_adv.item(), "att": l_att.item(), "id": l_id.item(),
               "rec": l_rec.item(), "perc": l_perc.item(), "g": loss_g.item()}
        self.history.append(rec)
        return rec

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.ema_decay, (1 + self.step) / (10 + self.step))  # warm start
        for pe, pg in zip(self.ema.parameters(), self.g.parameters()):
            pe.lerp_(pg, 1 - decay)
        for be, bg in zip(self.ema.buffers(), self.g.buffers()):
            be.copy_(bg)

    # ---- loop ------------------------------------------------------------------------
    def averages(self, first: int | None = None, last: int | None = None) -> dict:
        """Mean of every loss over the first / last ``n`` recorded steps (or all)."""
        h = self.history
        if first is not None:
            h = h[:first]
        if last is not None:
            h = h[-last:]
        if not h:
            return {}
        return {k: float(np.mean([r[k] for r in h])) for k in LOSS_KEYS}

    def _log(self, n: int) -> None:
        a = self.averages(last=n)
        rate = self.step / max(self.seconds, 1e-9)
        print(f"step {self.step:6d}  {rate:.2f} it/s  "
              + "  ".join(f"{k} {a[k]:.4f}" for k in LOSS_KEYS), flush=True)

    def train(self, steps: int | None = None, seconds: float | None = None,
              sample_every: int = 0, checkpoint_every: int = 0, checkpoint_path=None,
              on_checkpoint=None) -> dict:
        """Run until ``steps`` total steps or ``seconds`` of wall time from now; samples
        and checkpoints on the way (0: never); ``on_checkpoint(trainer)`` runs after each
        checkpoint (e.g. an export). Returns the averages of the last window."""
        t_start = time.perf_counter()
        while True:
            if steps is not None and self.step >= steps:
                break
            if seconds is not None and time.perf_counter() - t_start >= seconds:
                break
            self.train_step()
            if self.verbose and self.log_every and self.step % self.log_every == 0:
                self._log(self.log_every)
            if sample_every and self.step % sample_every == 0:
                self.sample_grid(self.out_dir / f"samples_{self.step:06d}.png")
            if checkpoint_every and self.step % checkpoint_every == 0:
                self.save_checkpoint(checkpoint_path)
                if on_checkpoint is not None:
                    on_checkpoint(self)
        return self.averages(last=max(1, self.log_every))

    # ---- warm start ------------------------------------------------------------------
    def init_from_weights(self, path) -> dict:
        """Warm start from an exported model (``export``; e.g. the packaged default): the
        generator and its EMA take the file's weights, INCLUDING its DP centre / clip /
        whitening buffers (so the released model keeps the public parameters it was
        published with, not ones recomputed from this run's data); the discriminator and
        the optimisers start fresh. This is how training continues across sessions and
        machines without a 160 MB optimiser checkpoint: the exported fp16 file is the
        compact resumable state (exact resume needs ``save_checkpoint`` / ``resume``).
        Returns the file's training summary."""
        from ..models.weights import load_model

        model = load_model(path, device=self.device)
        if model.config.to_json() != self.config.to_json():
            raise ValueError(f"{path} holds config {model.config.name}, this run trains "
                             f"{self.config.name}")
        self.g.load_state_dict(model.state_dict())
        self.ema.load_state_dict(model.state_dict())
        self.id_loss.center.copy_(self.g.bottleneck.dp_center)
        summary = getattr(model, "training_summary", {}) or {}
        if "dp" in summary:
            self.dp_summary = summary["dp"]
        self.init_summary = {"from": str(path), "steps": summary.get("steps"),
                             "seconds": summary.get("seconds"),
                             "previous": summary.get("init")}
        return summary

    # ---- checkpoints -----------------------------------------------------------------
    def default_checkpoint(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save_checkpoint(self, path=None) -> Path:
        """One resumable file (model, EMA, D, optimisers, RNG states, step, history),
        written to a temporary name and renamed over the previous one."""
        path = Path(path) if path is not None else self.default_checkpoint()
        state = {
            "format": CHECKPOINT_FORMAT, "config": self.config.to_json(), "step": self.step,
            "seconds": self.seconds, "g": self.g.state_dict(), "ema": self.ema.state_dict(),
            "d": self.d.state_dict(), "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(), "rng": self.rng.bit_generator.state,
            "torch_gen": self.torch_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": self.history, "hparams": self.hparams(), "dp": self.dp_summary,
            "init": self.init_summary}
        _atomic_save(state, path)
        return path

    def resume(self, path=None) -> int:
        """Load a checkpoint written by ``save_checkpoint``; returns the step."""
        path = Path(path) if path is not None else self.default_checkpoint()
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: unknown checkpoint format {state.get('format')!r}")
        if state["config"] != self.config.to_json():
            raise ValueError(f"{path} was trained with another config: {state['config']}")
        self.g.load_state_dict(state["g"])
        self.ema.load_state_dict(state["ema"])
        self.d.load_state_dict(state["d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.bit_generator.state = state["rng"]
        self.torch_gen.set_state(state["torch_gen"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.history = list(state["history"])
        self.dp_summary = state.get("dp", self.dp_summary)
        self.init_summary = state.get("init")
        self.id_loss.center.copy_(self.g.bottleneck.dp_center)
        return self.step

    # ---- samples and export ----------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, path, n: int = 6, epsilon: float = 100.0) -> Path:
        """PNG, one row per sample: target | degraded input | reconstruction (own
        identity) | swap (next row's identity) | DP output (own identity at ``epsilon``,
        fixed key). Uses the EMA generator; the same samples every call."""
        from PIL import Image

        n = min(n, self.n_train)
        idx = np.random.default_rng(12345).choice(self.n_train, n, replace=False)
        x = self.crops[idx].to(self.device).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0
        e = self.descriptors[idx]
        m = self.ema
        x_att = degrade_inner_face(x, self.degrade_sigma)
        z = m.attributes(x_att)
        rec = m.generator(z, m.bottleneck(e.to(self.device)))
        swap = m.generator(z, m.bottleneck(e.roll(-1, 0).to(self.device)))
        noisy, _ = release(m.bottleneck, e, epsilon, key=bytes(32), backend=self._dp_backend,
                           typical=self.typical_identity)
        dpo = m.generator(z, m.bottleneck(noisy.to(self.device)))
        cols = [x, x_att, rec, swap, dpo]
        # rows = samples, columns = cols: (3, n S, 5 S)
        rows = [torch.cat([c[i] for c in cols], dim=2) for i in range(n)]
        grid = torch.cat(rows, dim=1)
        img = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.numpy()).save(path)
        return path

    def hparams(self) -> dict:
        return {"batch_size": self.batch_size, "lr_g": self.lr_g, "lr_d": self.lr_d,
                "d_steps": self.d_steps, "seed": self.seed, "p_rec": self.p_rec,
                "p_dp": self.p_dp, "eps_range": list(self.eps_range),
                "degrade_sigma": self.degrade_sigma, "weights": self.weights,
                "ema_decay": self.ema_decay, "real_pipeline": self.use_pipeline,
                "typical_identity": self.typical_identity,
                "attribute_input": "inner face degraded (Gaussian blur in a feathered ellipse)"}

    def summary(self) -> dict:
        """The training summary stored in exported weights."""
        n = len(self.history)
        win = max(1, min(100, n // 10 or 1))
        return {"steps": self.step, "seconds": round(self.seconds, 1),
                "images_seen": self.step * self.batch_size, "config": self.config.name,
                "data": {"cache": str(self.cache_dir), "train_images": self.n_train,
                         "by_set": self.data_sizes,
                         "split": "LFW people with >= 5 images held out (never trained on)"},
                "loss_first": self.averages(first=win), "loss_last": self.averages(last=win),
                "loss_window": win, "hparams": self.hparams(), "dp": self.dp_summary,
                "device": str(self.device), "torch": torch.__version__,
                "weights": "EMA of the generator", "init": self.init_summary}

    def export(self, path, dtype: torch.dtype = torch.float16) -> Path:
        """Save the EMA model with models/weights.save_model and ``summary()``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_model(self.ema, tmp, summary=self.summary(), dtype=dtype)
        os.replace(tmp, path)
        return path
