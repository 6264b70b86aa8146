"""Distil the face prior's 256 head: a modulated 1x1 conv (256 -> 12 wavelet channels) + inverse
Haar on the 128 px features (blocks 0..4), trained to match the area-downsampled (4x4 mean)
1024 output of the frozen full network. Resumable; writes the head into the packaged prior file.

    make prior-ir
    .venv/bin/python tools/distil_head256.py --samples 1600 --steps 3000     # phase 1 + 2
    .venv/bin/python tools/distil_head256.py --eval-only                     # PSNR on held-out w

Phase 1 renders targets with OpenVINO on the original IR (the same network as ours to 1.3e-4,
tests/test_mobile_stylegan.py, and ~7x faster on this CPU): w = w_avg + psi (mapping(z) - w_avg),
psi ~ U(0.5, 1), seeded; cached in .cache/head256/ (chunks; a re-run continues). Phase 2 trains
with Adam on MSE, batch 8, the prior frozen (its 128 px features computed once and kept
in memory as fp16); the checkpoint (.cache/head256/ckpt.pt) is written
every 100 steps. Held-out: the last 128 cached samples are never trained on; PSNR over [-1, 1]
images (peak-to-peak 2).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from identitydp_fast.models import mobile_stylegan as spec
from identitydp_fast.reference.mobile_stylegan import load_prior

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "head256"
IR = REPO / ".cache" / "random-face" / "random_face" / "data"
CHUNK = 100
HELD_OUT = 128
CROP = 32


def render_targets(n: int, prior) -> None:
    import openvino as ov
    CACHE.mkdir(parents=True, exist_ok=True)
    core = ov.Core()
    synthesis = core.compile_model(str(spec.check_ir_folder(IR) / "SynthesisNetwork.xml"), "CPU")
    for c in range(math.ceil(n / CHUNK)):
        path = CACHE / f"chunk{c:04d}.npz"
        if path.exists():
            continue
        g = torch.Generator().manual_seed(1000 + c)
        z = torch.randn(CHUNK, spec.STYLE_DIM, generator=g)
        psi = torch.rand(CHUNK, 1, generator=g) * 0.5 + 0.5
        with torch.no_grad():
            w = prior.truncate(prior.mapping(z), psi).numpy().astype(np.float32)
        t0, out = time.time(), []
        for i in range(CHUNK):
            img = torch.from_numpy(synthesis(w[i:i + 1])[0])
            out.append(F.avg_pool2d(img, 4).numpy().astype(np.float16))
        np.savez(path.with_suffix(".tmp.npz"), w=w, target=np.concatenate(out))
        path.with_suffix(".tmp.npz").replace(path)
        print(f"targets chunk {c}: {CHUNK} in {time.time() - t0:.0f} s", flush=True)


def load_cache():
    chunks = sorted(CACHE.glob("chunk[0-9][0-9][0-9][0-9].npz"))
    w = np.concatenate([np.load(p)["w"] for p in chunks])
    t = np.concatenate([np.load(p)["target"] for p in chunks])
    return torch.from_numpy(w), torch.from_numpy(t)


def cached_features(prior, w) -> np.ndarray:
    path = CACHE / f"features{len(w)}.f16"
    shape = (len(w), spec.CHANNELS[prior.HEAD256_BLOCKS], 128, 128)
    done = CACHE / (path.name + ".done")
    feats = np.lib.format.open_memmap(path, mode="r+" if path.exists() else "w+", dtype=np.float16, shape=shape)
    if not done.exists():
        t0 = time.time()
        with torch.no_grad():
            for i in range(0, len(w), 8):
                feats[i:i + 8] = prior.synthesis(prior.broadcast(w[i:i + 8]), prior.HEAD256_BLOCKS).half().numpy()
        feats.flush()
        done.touch()
        print(f"features of {len(w)} faces in {time.time() - t0:.0f} s", flush=True)
    return feats


def psnr(prior, w, target, batch=8) -> float:
    mse = []
    with torch.no_grad():
        for i in range(0, len(w), batch):
            mse.append((prior.render256(w[i:i + batch]) - target[i:i + batch].float()).square().mean((1, 2, 3)))
    mse = torch.cat(mse)
    return float((10 * torch.log10(4.0 / mse)).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=1600)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--render-only", action="store_true",
                    help="only render more target chunks (the generator's training pool grows with them)")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    prior = load_prior()
    if not a.eval_only:
        render_targets(a.samples, prior)
    if a.render_only:
        return
    w_all, t_all = load_cache()
    # the first 800 faces only: later chunks are the generator's pool, its held-out set chunk 0
    w_all, t_all = w_all[:800], t_all[:800]
    w_tr, t_tr, w_ho, t_ho = w_all[:-HELD_OUT], t_all[:-HELD_OUT], w_all[-HELD_OUT:], t_all[-HELD_OUT:]
    head = prior.head256
    ckpt = CACHE / "ckpt.pt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt)
        head.load_state_dict(state["head"])
        step = state["step"]
    elif not prior.has_head256:  # start: the 512-level head's bias, small random weights
        with torch.no_grad():
            head.mod_bias.fill_(1.0)
            head.mod_weight.normal_(0, 0.01)
            head.weight.normal_(0, 1 / math.sqrt(head.weight.shape[1]))
            head.bias.copy_(prior.synthesis.to_img.bias)
    prior.has_head256 = True
    if a.eval_only:
        print(f"held-out PSNR {psnr(prior, w_ho, t_ho):.2f} dB over {len(w_ho)} faces (step {step})")
        return
    head.requires_grad_(True)
    opt = torch.optim.Adam(head.parameters(), lr=a.lr)
    if ckpt.exists() and "opt" in state:
        opt.load_state_dict(state["opt"])
    # the frozen part runs once: 128 px features of every training face, fp16 in a memory-mapped
    # file (8 MiB a face); the head is pointwise (1x1 conv + inverse Haar), so a random
    # CROP x CROP window of the features and its 2x window of the target give exact, 16x
    # cheaper gradients
    feats_tr = cached_features(prior, w_tr)
    g = torch.Generator().manual_seed(step)
    t0 = time.time()
    while step < a.steps:
        idx = torch.randint(len(w_tr), (a.batch,), generator=g)
        wp = prior.broadcast(w_tr[idx])
        y, x = (int(v) for v in torch.randint(128 - CROP + 1, (2,), generator=g))
        feats = torch.from_numpy(np.stack([feats_tr[i, :, y:y + CROP, x:x + CROP] for i in idx.tolist()])).float()
        target = t_tr[idx][:, :, 2 * y:2 * (y + CROP), 2 * x:2 * (x + CROP)].float()
        lr = a.lr * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = F.mse_loss(head(feats, wp[:, -1]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0 or step == a.steps:
            torch.save({"head": head.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
            print(f"step {step} loss {loss.item():.5f} ({10 * math.log10(4 / loss.item()):.2f} dB) "
                  f"{(time.time() - t0) / 100:.2f} s/step", flush=True)
            t0 = time.time()
    print(f"held-out PSNR {psnr(prior, w_ho, t_ho):.2f} dB over {len(w_ho)} faces (step {step})")
    state, meta = spec.read_prior_file(spec.default_prior_path())
    state.update({f"head256.{k}": v.detach() for k, v in head.state_dict().items()})
    spec.save_prior(spec.default_prior_path(), state, summary={
        **__import__("json").loads(meta.get("summary", "{}")),
        "head256": f"distilled {step} steps on {len(w_tr)} OpenVINO 1024 renders (4x4 mean), "
                   f"held-out PSNR {psnr(prior, w_ho, t_ho):.2f} dB on {len(w_ho)}"})
    print(f"wrote the head into {spec.default_prior_path()}")


if __name__ == "__main__":
    main()
