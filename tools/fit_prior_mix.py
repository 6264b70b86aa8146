"""Fit the prior-256 model (reference/prior_mix.py) on the face prior's own samples and write
identitydp_fast/weights/prior-256.safetensors. Resumable: phase 1 appends chunks, phase 2 takes
seconds.

    make prior-ir                                              # only for the packaged prior file
    .venv/bin/python tools/fit_prior_mix.py --render 6000      # phase 1: samples into .cache/prior-mix
    .venv/bin/python tools/fit_prior_mix.py --fit              # phase 2: ridge fits -> the weights file

Phase 1 (~0.12 s per sample on this CPU): w = w_avg + psi (mapping(z) - w_avg), psi ~ U(0.5, 1),
seeded per chunk of 200; the prior renders the 256 crop (blocks 0..4 + the 256 head); stored per
sample: w, the attribute features of the crop with its inner face degraded exactly as the
pipeline degrades a photo's crop (pipeline/attributes.py, eyes_y = PRIOR_EYES_Y, sigma SIGMA), and
the dlib descriptor of the clean crop (dlib's chip cut at the prior's template).

Phase 2: chunk 0 is held out. AttributeEncoder: ridge from the features to w, lambda picked on
the held-out MSE; IdentityMapper: ridge from the unit descriptor to w, lambda picked on the
held-out MSE among those that keep epsilon-1 releases inside the prior's typical set
(``pick_identity_lambda``), its output capped at the median whitened norm of the prior's w. The
identity gain g (the mapper's output is shrunk towards the mean: its R^2 is low) is GAIN = 1.5;
the identity loss on held-out faces, dlib(render(W+ with the mapped identity)) against the
descriptor it was mapped from (centred cosine), is measured for g in GAINS and recorded (lowest
at 1.5 for the default identity blocks). The public DP
parameters come from the descriptors of the prior's samples (synthetic faces: no real person's
data enters them): median norm, mean unit vector, per-coordinate spread, clip C = CLIP.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from identitydp_fast.pipeline.align import PRIOR_EYES_Y
from identitydp_fast.pipeline.attributes import degrade_inner_face
from identitydp_fast.reference.mobile_stylegan import load_prior
from identitydp_fast.reference.prior_mix import PriorMixConfig, PriorMixGenerator, attribute_features

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "prior-mix"
OUT = REPO / "identitydp_fast" / "weights" / "prior-256.safetensors"
CHUNK = 200
SIGMA = 10.0                      # inner-face blur at 256 (5 px at 128: DESIGN.md 7b)
CLIP = 5.0                        # the L1 clip C of the unit residual (fast-128's, DESIGN.md 4)
ATTR_LAMBDAS = (100.0, 300.0, 1000.0, 3000.0)
ID_LAMBDAS = (1.0, 10.0, 100.0, 300.0, 1000.0)
MAX_SPREAD = 1.5
GAINS = (1.0, 1.5, 2.0, 2.5)
GAIN = 1.5


def identity_net():
    from identitydp_fast.training.losses import IdentityLoss
    from identitydp_fast.training.prior_trainer import chip_grid
    net = IdentityLoss(256)
    net.grid = chip_grid(256)
    return net


@torch.no_grad()
def render(n: int, batch: int = 20) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    prior, ident = load_prior(), identity_net()
    for c in range(math.ceil(n / CHUNK)):
        path = CACHE / f"chunk{c:04d}.pt"
        if path.exists():
            continue
        t0 = time.time()
        g = torch.Generator().manual_seed(1_000_003 * (c + 1))
        z = torch.randn(CHUNK, 512, generator=g)
        psi = torch.rand(CHUNK, 1, generator=g) * 0.5 + 0.5
        w = prior.truncate(prior.mapping(z), psi)
        feats, desc = [], []
        for i in range(0, CHUNK, batch):
            crop = prior.render256(w[i:i + batch]).clamp(-1, 1)
            att = degrade_inner_face(crop, SIGMA, eyes_y=PRIOR_EYES_Y)
            feats.append(attribute_features(att))
            desc.append(ident.embed(crop))
        tmp = path.with_suffix(".tmp")
        torch.save({"w": w, "features": torch.cat(feats), "descriptors": torch.cat(desc)}, tmp)
        tmp.replace(path)
        print(f"chunk {c}: {CHUNK} samples in {time.time() - t0:.0f} s", flush=True)


def load_chunks():
    paths = sorted(CACHE.glob("chunk[0-9][0-9][0-9][0-9].pt"))
    if len(paths) < 2:
        raise SystemExit(f"need >= 2 chunks in {CACHE} (run --render first; chunk 0 is held out)")
    parts = [torch.load(p) for p in paths]
    held_out = parts[0]
    train = {k: torch.cat([p[k] for p in parts[1:]]) for k in held_out}
    return held_out, train, len(paths)


def pick_lambda(fit, x_tr, y_tr, x_ho, y_ho, lambdas):
    scores = {}
    for lam in lambdas:
        fit.fit(x_tr, y_tr, lam)
        scores[lam] = float((fit(x_ho.float()) - y_ho).square().mean())
    best = min(scores, key=scores.get)
    fit.fit(x_tr, y_tr, best)
    return best, scores


def pick_identity_lambda(model, tr, ho):
    """The identity mapper's lambda: the lowest held-out MSE among the lambdas under which
    epsilon-1 releases of held-out descriptors map no farther out in the prior's whitened W
    than the descriptors themselves do (ratio of median whitened norms <= MAX_SPREAD): a
    small lambda fits the descriptors' directions and blows up the isotropic noise."""
    from identitydp_fast.pipeline.release import release

    im = model.identity_mapper
    unit = lambda d: d / d.norm(dim=1, keepdim=True)
    x_tr, x_ho = unit(tr["descriptors"]), unit(ho["descriptors"])
    im.map.fit(x_tr, tr["w"], ID_LAMBDAS[0])
    im.set_typical_set(tr["w"])              # max_norm: the median whitened norm of the prior's w
    released, _ = release(model.bottleneck, ho["descriptors"], 1.0, key=bytes(32))
    scores, spread = {}, {}
    for lam in ID_LAMBDAS:
        im.map.fit(x_tr, tr["w"], lam)
        scores[lam] = float((im.map(x_ho) - ho["w"]).square().mean())
        spread[lam] = float(im.whitened_norm(im.map(unit(released))).median()
                            / im.whitened_norm(im.map(x_ho)).median())
        print(f"identity lambda {lam:g}: held-out MSE {scores[lam]:.4f}, eps-1 spread {spread[lam]:.2f}",
              flush=True)
    ok = [lam for lam in ID_LAMBDAS if spread[lam] <= MAX_SPREAD] or [max(ID_LAMBDAS)]
    best = min(ok, key=scores.get)
    im.map.fit(x_tr, tr["w"], best)
    return best, scores, spread


@torch.no_grad()
def fit(out: Path) -> None:
    from identitydp_fast.models.prior_weights import save_mix_generator
    from identitydp_fast.training.losses import centred_cosine_loss

    ho, tr, n_chunks = load_chunks()
    model = PriorMixGenerator(PriorMixConfig(), load_prior())
    var = float((ho["w"] - tr["w"].mean(0)).square().mean())
    lam_a, s_a = pick_lambda(model.attribute_encoder.map, tr["features"], tr["w"], ho["features"], ho["w"],
                             ATTR_LAMBDAS)
    bn = model.bottleneck
    bn.set_identity_statistics(tr["descriptors"], clip=CLIP)
    lam_i, s_i, spread = pick_identity_lambda(model, tr, ho)
    # the identity gain, measured through dlib on held-out faces: each face's own attribute w,
    # the identity of another held-out face (a swap, as in an anonymisation)
    ident = identity_net()
    k = min(60, len(ho["w"]) // 2)
    src = ho["descriptors"][k:2 * k]
    x_w = model.attribute_encoder.map(ho["features"][:k])
    gains = {}
    for g in GAINS:
        model.identity_mapper.map.gain.fill_(g)
        wp = model.mix(x_w, model.identity_mapper(src))
        emb = torch.cat([ident.embed(model.prior.render256(wp[i:i + 20]).clamp(-1, 1))
                         for i in range(0, k, 20)])
        gains[g] = float(centred_cosine_loss(emb, src, bn.dp_center).mean())
        print(f"gain {g}: centred-cosine identity loss {gains[g]:.4f}", flush=True)
    # the gain is fixed: with identity blocks (2, 3) the identity loss was lowest at 2.0-2.5,
    # where renders of real photos' own identities smear (looked at on 8 LFW photos); with the
    # default blocks (1, 2, 3) it is lowest at 1.5 (0.432; 2.0: 0.434). Losses: the summary
    gain = GAIN
    model.identity_mapper.map.gain.fill_(gain)
    summary = {
        "method": "ridge fits on the prior's own samples (tools/fit_prior_mix.py)",
        "samples": int(len(tr["w"])), "held_out": int(len(ho["w"])), "chunks": n_chunks,
        "w_variance_held_out": var,
        "attribute_encoder": {"lambda": lam_a, "held_out_mse": s_a},
        "identity_mapper": {"lambda": lam_i, "held_out_mse": s_i, "eps1_spread": spread,
                            "gain": gain, "gain_identity_loss": gains,
                            "max_whitened_norm": float(model.identity_mapper.max_norm)},
        "hparams": {"degrade_sigma": SIGMA, "clip": CLIP},
    }
    save_mix_generator(out, model, summary)
    print(json.dumps(summary, indent=1))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", type=int, default=0, help="render samples up to this count")
    ap.add_argument("--fit", action="store_true", help="fit the maps and write the weights file")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.render:
        render(a.render)
    if a.fit:
        fit(a.out)


if __name__ == "__main__":
    main()
