"""The face prior (reference/mobile_stylegan.py, models/mobile_stylegan.py, models/openvino_ir.py):
the IR reader's errors, the closed-form inverse Haar against the exported filter bank, the
whole network against OpenVINO on the original IR files, and the packaged fp16 weights."""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from identitydp_fast.models import mobile_stylegan as spec
from identitydp_fast.models.openvino_ir import IRFormatError, IRGraph
from identitydp_fast.reference.mobile_stylegan import inverse_haar, load_prior, prior_from_state

REPO = Path(__file__).resolve().parent.parent
IR_DIR = Path(os.environ.get("IDP_PRIOR_IR_DIR", REPO / ".cache" / "random-face" / "random_face" / "data"))
needs_ir = pytest.mark.skipif(not (IR_DIR / "SynthesisNetwork.xml").is_file(),
                              reason=f"random-face IR files not in {IR_DIR} (`make prior-ir` fetches them)")

TINY_XML = """<?xml version="1.0"?>
<net name="t" version="10"><layers>
<layer id="0" name="w" type="Const" version="opset1"><data element_type="f32" shape="2, 3" offset="0" size="24"/>
<output><port id="0" precision="FP32"><dim>2</dim><dim>3</dim></port></output></layer>
</layers><edges/></net>"""


def test_ir_reader_reads_a_constant_and_names_a_truncated_file(tmp_path):
    (tmp_path / "m.xml").write_text(TINY_XML)
    (tmp_path / "m.bin").write_bytes(np.arange(6, dtype="<f4").tobytes())
    g = IRGraph(tmp_path / "m.xml")
    np.testing.assert_array_equal(g.const("w"), np.arange(6, dtype=np.float32).reshape(2, 3))
    (tmp_path / "m.bin").write_bytes(np.arange(5, dtype="<f4").tobytes())
    with pytest.raises(IRFormatError, match=r"m\.bin: truncated: Const 'w' needs bytes \[0, 24\) of a 20-byte"):
        IRGraph(tmp_path / "m.xml").const("w")
    with pytest.raises(IRFormatError, match="no layer 'v'"):
        g.layer("v")


def test_ir_reader_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        IRGraph(tmp_path / "nothing.xml")
    (tmp_path / "x.xml").write_text("<html></html>")
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(IRFormatError, match="not an OpenVINO IR model"):
        IRGraph(tmp_path / "x.xml")
    with pytest.raises(FileNotFoundError, match="random-face==2021.7.21.1"):
        spec.read_prior_ir(tmp_path)


def _haar_filter_bank(x: torch.Tensor) -> torch.Tensor:
    """The exported graph's synthesis bank: transposed convs along rows then columns."""
    n, c4, h, w = x.shape
    c = c4 // 4
    g0 = torch.tensor([1.0, 1.0], dtype=x.dtype) / math.sqrt(2)
    g1 = torch.tensor([1.0, -1.0], dtype=x.dtype) / math.sqrt(2)
    ll = x[:, :c]
    b = x[:, c:].reshape(n, c, 3, h, w)

    def rows(t, k):
        return F.conv_transpose2d(t, k.view(1, 1, 2, 1).expand(c, 1, 2, 1), stride=(2, 1), groups=c)

    def cols(t, k):
        return F.conv_transpose2d(t, k.view(1, 1, 1, 2).expand(c, 1, 1, 2), stride=(1, 2), groups=c)

    return cols(rows(ll, g0) + rows(b[:, :, 0], g1), g0) + cols(rows(b[:, :, 1], g0) + rows(b[:, :, 2], g1), g1)


@pytest.mark.parametrize("shape", [(1, 4, 1, 1), (2, 12, 5, 7), (3, 388, 9, 4)])
def test_inverse_haar_equals_the_exported_filter_bank(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(inverse_haar(x), _haar_filter_bank(x), rtol=0, atol=1e-12)
    # perfect reconstruction: the Haar analysis of the output gives the bands back
    y = inverse_haar(x)
    a, b_, c_, d = y[:, :, 0::2, 0::2], y[:, :, 0::2, 1::2], y[:, :, 1::2, 0::2], y[:, :, 1::2, 1::2]
    ll = (a + b_ + c_ + d) / 2
    torch.testing.assert_close(ll, x[:, : shape[1] // 4], rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def ir_prior():
    state = {k: torch.from_numpy(v) for k, v in spec.read_prior_ir(IR_DIR).items()}
    return prior_from_state(state, with_w_avg=False)


@needs_ir
def test_prior_matches_openvino_at_1024(ir_prior):
    """Our module vs OpenVINO running the original IR files, random w: max abs <= 1e-3
    (measured 1.3e-4 in float32, 1.1e-4 in float64: the export's own float32 rounding)."""
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    mapping = core.compile_model(str(IR_DIR / "MappingNetwork.xml"), "CPU")
    synthesis = core.compile_model(str(IR_DIR / "SynthesisNetwork.xml"), "CPU")
    z = np.random.default_rng().standard_normal((1, spec.STYLE_DIM)).astype(np.float32)
    w_ov = mapping(z)[0]
    img_ov = synthesis(w_ov)[0]
    with torch.no_grad():
        w = ir_prior.mapping(torch.from_numpy(z))
        img = ir_prior(torch.from_numpy(w_ov))
    assert np.abs(w.numpy() - w_ov).max() <= 1e-4
    assert img.shape == (1, 3, 1024, 1024)
    assert np.abs(img.numpy() - img_ov).max() <= 1e-3


@needs_ir
def test_packaged_fp16_prior_renders_like_the_ir_weights(ir_prior):
    packaged = load_prior()
    assert torch.count_nonzero(packaged.w_avg) == spec.STYLE_DIM
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        w = ir_prior.mapping(torch.randn(2, spec.STYLE_DIM, generator=g))
        wp = ir_prior.broadcast(w)
        a, b = ir_prior.synthesis(wp, 5), packaged.synthesis(wp, 5)
    # fp16 storage of the weights: features (|x| up to ~60) agree to a few 1e-3 on average
    assert (a - b).abs().mean() <= 5e-3


def test_packaged_prior_runs_in_float64_and_takes_w_plus():
    prior = load_prior(dtype=torch.float64)
    w = prior.truncate(prior.mapping(torch.randn(2, spec.STYLE_DIM, dtype=torch.float64)), 0.7)
    wp = prior.broadcast(w).clone()
    wp[1, spec.style_index(2, "conv1")] = w[0]  # W+: one layer's style from another face
    feats = prior.synthesis(wp, 4)
    assert feats.dtype == torch.float64 and feats.shape == (2, 512, 64, 64)
    assert torch.isfinite(feats).all()
    with pytest.raises(ValueError, match=r"W\+ \(N, 23, 512\)"):
        prior.broadcast(torch.zeros(2, 7, spec.STYLE_DIM))


def test_prior_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert_prior.py"):
        spec.read_prior_file(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "x"})
    with pytest.raises(ValueError, match="not a face-prior file"):
        spec.read_prior_file(tmp_path / "other.safetensors")


def test_head256_interface_crops_and_files_with_and_without_it():
    """prior.head256(features (N, 256, 128, 128), w (N, 512)) -> (N, 3, 256, 256); a (k + 2h)
    feature crop gives the exact inner 2k x 2k of the full render (h = halo, the crop trick of
    tools/distil_head256.py); files without a head, with the 1x1-only head (loads into
    ``skip``, same output) and with the Head256 all load."""
    from identitydp_fast.reference.mobile_stylegan import FacePrior, Head256, WaveletToImage
    torch.manual_seed(0)
    head = Head256(spec.CHANNELS[FacePrior.HEAD256_BLOCKS], FacePrior.HEAD256_MID, FacePrior.HEAD256_LAYERS)
    for p in head.parameters():
        p.data.normal_(0, 0.05)
    x, w = torch.randn(2, 256, 128, 128), torch.randn(2, spec.STYLE_DIM)
    with torch.no_grad():
        out = head(x, w)
        assert out.shape == (2, 3, 256, 256) and torch.isfinite(out).all()
        h, y0, k = head.halo, 40, 16
        part = head(x[:, :, y0 - h:y0 + k + h, y0 - h:y0 + k + h], w)[:, :, 2 * h:2 * (h + k), 2 * h:2 * (h + k)]
        assert torch.allclose(part, out[:, :, 2 * y0:2 * (y0 + k), 2 * y0:2 * (y0 + k)], atol=1e-4)
    base = {k: v for k, v in FacePrior().state_dict().items() if not k.startswith("head256.")}
    assert not prior_from_state(base).has_head256
    old = WaveletToImage(256)
    for p in old.parameters():
        p.data.normal_(0, 0.05)
    legacy = prior_from_state({**base, **{f"head256.{k}": v for k, v in old.state_dict().items()}})
    new = prior_from_state({**base, **{f"head256.{k}": v for k, v in head.state_dict().items()}})
    assert legacy.has_head256 and new.has_head256
    with torch.no_grad():
        assert torch.allclose(legacy.head256(x[:1], w[:1]), old(x[:1], w[:1]), atol=1e-5)
        assert torch.allclose(new.head256(x[:1], w[:1]), out[:1], atol=1e-5)
    packaged = load_prior()
    with torch.no_grad():
        assert packaged.head256(x[:1, :, :8, :8], w[:1]).shape == (1, 3, 16, 16)
