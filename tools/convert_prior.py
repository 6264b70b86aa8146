"""Convert the MobileStyleGAN IR files of the random-face package into the project's
face-prior safetensors (identitydp_fast/weights/mobile-stylegan.safetensors), once.

    make prior-ir                      # pip download --no-deps random-face, unpack into .cache/
    .venv/bin/python tools/convert_prior.py [--ir .cache/random-face/random_face/data] [--out PATH]

w_avg (the truncation centre) is the mean w of 4096 standard-normal z drawn with seed 0.
The fp16 file is checked against the fp32 IR weights on 4 random w before it is written
(max abs image difference printed).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from identitydp_fast.models import mobile_stylegan as spec
from identitydp_fast.reference.mobile_stylegan import prior_from_state

DEFAULT_IR = Path(__file__).resolve().parent.parent / ".cache" / "random-face" / "random_face" / "data"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ir", type=Path, default=DEFAULT_IR, help="folder with the four IR files")
    ap.add_argument("--out", type=Path, default=spec.default_prior_path())
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    if a.out.exists() and not a.overwrite:
        raise SystemExit(f"convert_prior: {a.out} exists (pass --overwrite to replace it)")
    state = {k: torch.from_numpy(v) for k, v in spec.read_prior_ir(a.ir).items()}
    prior = prior_from_state(state, with_w_avg=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        prior.w_avg.copy_(prior.mapping(torch.randn(4096, spec.STYLE_DIM, generator=g)).mean(0))
    spec.save_prior(a.out, prior.state_dict(), summary={
        "source": "random-face==2021.7.21.1 random_face/data/{Mapping,Synthesis}Network IR v10",
        "w_avg": "mean mapping(z) over 4096 z ~ N(0, I), torch seed 0"})
    reloaded, _ = spec.read_prior_file(a.out)
    half = prior_from_state(reloaded)
    with torch.no_grad():
        w = prior.mapping(torch.randn(4, spec.STYLE_DIM, generator=g))
        wp = prior.broadcast(w)
        diff = (prior.synthesis(wp, 5) - half.synthesis(wp, 5)).abs().max().item()
    print(f"wrote {a.out} ({a.out.stat().st_size / 2**20:.1f} MiB); fp16 vs fp32 weights, "
          f"level-128 features max abs diff {diff:.2e}")


if __name__ == "__main__":
    main()
