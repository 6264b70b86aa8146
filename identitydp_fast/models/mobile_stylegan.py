"""The pretrained face prior: MobileStyleGAN (Belousov 2021, distilled from StyleGAN2-FFHQ
1024), read from the OpenVINO IR files of the ``random-face`` package and converted once
into the project's safetensors.

Where the weights come from: ``pip download --no-deps random-face==2021.7.21.1`` (Apache-2.0
package) ships ``random_face/data/MappingNetwork.{xml,bin}`` and
``random_face/data/SynthesisNetwork.{xml,bin}``. ``read_prior_ir(folder)`` walks those graphs
and returns the state dict of identitydp_fast/reference/mobile_stylegan.py's ``FacePrior``;
``tools/convert_prior.py`` writes it as ``identitydp_fast/weights/mobile-stylegan.safetensors``,
which is what the product loads (``load_prior``): at run time neither openvino nor
random-face is needed.

Terms: the weights derive from NVIDIA's StyleGAN2-FFHQ (NVIDIA Source Code License,
non-commercial) and FFHQ (CC BY-NC-SA 4.0): research and non-commercial use only.

Structure read from the graph (names as in the IR; our state-dict names in brackets):

* mapping, z (N, 512) -> w (N, 512): pixel norm x / sqrt(mean(x^2) + 1e-8), then 8 x
  [h = lrelu_0.2(h W_k^T + b_k) * sqrt(2)]   [mapping.weight.k, mapping.bias.k]
* synthesis, W+ (N, 23, 512) -> (N, 3, 1024, 1024) in [-1, 1] RGB. Every modulated layer reads
  its own w (index in brackets) through s = (w M^T + m) * scale (``scale`` the equalised-lr
  constant 1/sqrt(fan_in), 1 for the upsample), then multiplies its input's channels by s
  (no demodulation in this export):
  - stem [0]: a learned 4x4 constant, modulated full 3x3 conv 512 -> 512, + fixed noise map,
    + bias, lrelu_0.2   (``m.input.input``, ``m.conv1``)
  - block k = 0..6, 4 * 2^k -> 8 * 2^k px   (``m.layers.k``):
    up [1 + 3k]: modulate, split C channels into LL (C/4) and the 3 high bands (3C/4, band j
      of channel c at 3c + j), inverse Haar wavelet transform -> C/4 channels at 2x;
    conv1 [2 + 3k], conv2 [3 + 3k]: modulate, depthwise 3x3, pointwise 1x1, + fixed noise map,
      + bias, lrelu_0.2
  - to_img [22] (``m.layers.6.to_img``): modulate, 1x1 conv 64 -> 12, + bias, inverse Haar
    of the 4 bands x RGB -> 1024 x 1024.
  Channels after blocks 0..6: 512, 512, 512, 512, 256, 128, 64 (at 8, 16, 32, 64, 128, 256, 512).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .openvino_ir import IRFormatError, IRGraph

FORMAT = "identitydp-fast/face-prior"
FORMAT_VERSION = "1"
STYLE_DIM = 512
MAPPING_LAYERS = 8
#: channels after the stem and after each of the 7 blocks; resolution 4 * 2^k
CHANNELS = (512, 512, 512, 512, 512, 256, 128, 64)
N_BLOCKS = len(CHANNELS) - 1
#: number of w's in W+: stem, 3 per block, to_img
N_STYLES = 1 + 3 * N_BLOCKS + 1
IR_FILES = ("MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin")
HOW_TO_GET = ("pip download --no-deps random-face==2021.7.21.1 -d DIR && "
              "python -m zipfile -e DIR/random_face-2021.7.21.1-py3-none-any.whl DIR "
              "(the files are in DIR/random_face/data; `make prior-ir` does this into .cache/)")
LICENCE = ("MobileStyleGAN weights distilled from NVIDIA StyleGAN2-FFHQ (NVIDIA Source Code "
           "License, non-commercial) trained on FFHQ (CC BY-NC-SA 4.0): research and "
           "non-commercial use only")


def style_index(block: int, layer: str) -> int:
    """Position in W+ of block ``block``'s ``layer`` ('up', 'conv1', 'conv2')."""
    return 1 + 3 * block + ("up", "conv1", "conv2").index(layer)


def check_ir_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    missing = [f for f in IR_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"MobileStyleGAN IR files {missing} not found in {folder}; get them with: "
                                f"{HOW_TO_GET}")
    return folder


def _modulation(g: IRGraph, prefix: str, out: dict, key: str):
    """Read ``prefix``.modulation into out[key + '.mod_weight' / '.mod_bias' / '.mod_scale'];
    return the Multiply layer that applies s to the activation."""
    weight = g.layer(prefix + ".modulation.weight")
    matmul = g.only_consumer(weight, "MatMul")
    add = g.only_consumer(matmul, "Add")
    reshape = g.only_consumer(add, "Reshape")
    (mul,) = g.consumers(reshape, "Multiply")
    scale = 1.0
    if any(g.layers[s].type == "Const" for s, _ in mul.inputs):  # the equalised-lr constant
        scale = float(g.const_input(mul).reshape(()))
        mul = g.only_consumer(mul, "Multiply")
    out[key + ".mod_weight"] = g.const(weight)
    out[key + ".mod_bias"] = g.const(prefix + ".modulation.bias").reshape(-1)
    out[key + ".mod_scale"] = np.array(scale, np.float32)
    return mul


def _noise_bias_act(g: IRGraph, conv, prefix: str, out: dict, key: str):
    noise = g.only_consumer(conv, "Add")
    out[key + ".noise"] = g.const_input(noise)
    bias = g.only_consumer(noise, "Add")
    out[key + ".bias"] = g.const(prefix + ".bias").reshape(-1)
    if g.producer(bias, 1).name != prefix + ".bias" and g.producer(bias, 0).name != prefix + ".bias":
        raise IRFormatError(f"{g.xml_path}: the bias after {conv.name!r} is not {prefix}.bias")
    act = g.only_consumer(bias, "PReLU")
    slope = float(g.const_input(act, 1).reshape(-1)[0])
    if abs(slope - 0.2) > 1e-7:
        raise IRFormatError(f"{g.xml_path}: leaky ReLU slope {slope} after {prefix}, expected 0.2")
    return act


def _check_haar(g: IRGraph):
    """Every inverse-wavelet transposed conv must hold Haar taps +-1/sqrt(2): the reference
    implements that transform in closed form (reference/mobile_stylegan.py inverse_haar)."""
    for layer in g.of_type("GroupConvolutionBackpropData"):
        taps = g.const_input(layer, 1)
        if not np.allclose(np.abs(taps), 1 / math.sqrt(2), atol=1e-7):
            raise IRFormatError(f"{g.xml_path}: {layer.name} is not a Haar synthesis filter "
                                f"(taps {taps.reshape(-1)[:4]})")


def read_prior_ir(folder: str | Path) -> dict[str, np.ndarray]:
    """The FacePrior state dict (float32 numpy arrays) from the four IR files in ``folder``."""
    folder = check_ir_folder(folder)
    out: dict[str, np.ndarray] = {}
    m = IRGraph(folder / "MappingNetwork.xml")
    matmuls = m.of_type("MatMul")
    if len(matmuls) != MAPPING_LAYERS:
        raise IRFormatError(f"{m.xml_path}: {len(matmuls)} linear layers, expected {MAPPING_LAYERS}")
    for k, mm in enumerate(matmuls):
        w = m.const_input(mm, 1)
        if w.shape != (STYLE_DIM, STYLE_DIM):
            raise IRFormatError(f"{m.xml_path}: {mm.name} weight {w.shape}, expected (512, 512)")
        add = m.only_consumer(mm, "Add")
        bias_in = m.producer(add, 1)
        bias = m.const_input(bias_in, 0) if bias_in.type == "Reshape" else m.const(bias_in)
        act = m.only_consumer(add, "PReLU")
        gain = m.only_consumer(act, "Multiply")
        if abs(float(m.const_input(gain).reshape(())) - math.sqrt(2)) > 1e-6:
            raise IRFormatError(f"{m.xml_path}: gain after {mm.name} is not sqrt(2)")
        out[f"mapping.weight.{k}"], out[f"mapping.bias.{k}"] = w, bias.reshape(-1)

    g = IRGraph(folder / "SynthesisNetwork.xml")
    _check_haar(g)
    out["synthesis.const"] = g.const("m.input.input")
    mul = _modulation(g, "m.conv1.conv", out, "synthesis.stem")
    conv = g.only_consumer(mul, "Convolution")
    out["synthesis.stem.weight"] = g.const_input(conv, 1)
    _noise_bias_act(g, conv, "m.conv1", out, "synthesis.stem")
    for k in range(N_BLOCKS):
        p, key = f"m.layers.{k}", f"synthesis.blocks.{k}"
        mul = _modulation(g, p + ".up", out, key + ".up")
        split = g.only_consumer(mul, "VariadicSplit")
        if split.out_shapes[0][1] * 4 != CHANNELS[k] or split.out_shapes[1][1] != 3 * CHANNELS[k] // 4:
            raise IRFormatError(f"{g.xml_path}: {p}.up splits {split.out_shapes}, expected "
                                f"{CHANNELS[k] // 4} + {3 * CHANNELS[k] // 4} channels")
        for name in ("conv1", "conv2"):
            mul = _modulation(g, f"{p}.{name}.conv", out, f"{key}.{name}")
            dw = g.only_consumer(mul, "GroupConvolution")
            dw_w = g.const(f"{p}.{name}.conv.weight_dw")
            out[f"{key}.{name}.dw_weight"] = dw_w.reshape(dw_w.shape[0], 1, *dw_w.shape[-2:])
            pw = g.only_consumer(dw, "Convolution")
            out[f"{key}.{name}.pw_weight"] = g.const_input(pw, 1)
            _noise_bias_act(g, pw, f"{p}.{name}", out, f"{key}.{name}")
    mul = _modulation(g, f"m.layers.{N_BLOCKS - 1}.to_img.conv", out, "synthesis.to_img")
    conv = g.only_consumer(mul, "Convolution")
    out["synthesis.to_img.weight"] = g.const_input(conv, 1)
    out["synthesis.to_img.bias"] = g.const(f"m.layers.{N_BLOCKS - 1}.to_img.bias").reshape(-1)
    return out


# -- the project's weight file --------------------------------------------------------------
def save_prior(path: str | Path, state: dict[str, torch.Tensor], summary: dict,
               dtype: torch.dtype = torch.float16) -> None:
    """Write the prior's state dict as safetensors: floating tensors in ``dtype`` except the
    scalar scales and w_avg (float32), the structure and terms in the metadata."""
    tensors = {}
    for name, t in state.items():
        t = torch.as_tensor(t).detach().cpu().contiguous()
        keep32 = t.ndim == 0 or name.endswith("w_avg")
        tensors[name] = t.float() if keep32 else t.to(dtype)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "licence": LICENCE,
            "structure": json.dumps({"style_dim": STYLE_DIM, "channels": CHANNELS,
                                     "n_styles": N_STYLES}),
            "summary": json.dumps(summary), "dtype": str(dtype).replace("torch.", "")}
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)  # a weights file, readable like the rest of the package
    tmp.replace(path)


def read_prior_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(float32 state dict, metadata) of a face-prior safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face-prior weights {path} not found (tools/convert_prior.py writes "
                                f"them from the random-face IR files: {HOW_TO_GET})")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a face-prior file (format {meta.get('format')!r}, "
                             f"expected {FORMAT!r})")
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    return state, meta


def default_prior_path() -> Path:
    return Path(__file__).resolve().parent.parent / "weights" / "mobile-stylegan.safetensors"
