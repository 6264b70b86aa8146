"""AEI-Net weights files (identitydp_fast/models/weights.py): safetensors round trip (fp32
exact, fp16 close, DP buffers always exact), config + summary in the metadata, and the
error that lists missing / unexpected / mis-shaped tensors."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from identitydp_fast.models.config import AEINetConfig
from identitydp_fast.models.weights import (WeightsMismatchError, load_model, read_metadata,
                                            save_model)
from identitydp_fast.reference.aei_net import AEINet

TINY = AEINetConfig(name="tiny", crop_size=32, encoder_channels=(8, 16, 16),
                    generator_channels=(32, 16, 8, 8), modulation_kernels=(3, 3, 1, 1))
SUMMARY = {"steps": 1234, "data": "test", "losses": {"rec": 0.01}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = AEINet(TINY).train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    v = torch.randn(4, 128) * 0.1 + 0.12
    m(x, v)  # move the BatchNorm running statistics off their defaults
    m.bottleneck.set_identity_statistics(torch.randn(20, 128) * 0.05 + 0.12, clip=4.5)
    return m.eval()


def _probe(m):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    v = torch.randn(2, 128, generator=g) * 0.1 + 0.12
    with torch.no_grad():
        return m(x, v)


def test_fp32_round_trip_is_exact(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(model, path, summary=SUMMARY)
    back = load_model(path)
    assert back.config == TINY and not back.training
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert torch.equal(_probe(model), _probe(back))
    assert back.training_summary == SUMMARY


def test_metadata_holds_config_and_summary(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(model, path, summary=SUMMARY)
    config, summary, meta = read_metadata(path)
    assert config == TINY and summary == SUMMARY
    assert json.loads(meta["config"])["encoder_channels"] == [8, 16, 16]
    assert meta["dtype"] == "float32"


def test_fp16_storage_loads_back_float32_close(model, tmp_path):
    p32, p16 = tmp_path / "m32.safetensors", tmp_path / "m16.safetensors"
    save_model(model, p32)
    save_model(model, p16, dtype=torch.float16)
    assert p16.stat().st_size < 0.6 * p32.stat().st_size
    with safe_open(str(p16), framework="pt") as f:
        assert f.get_tensor("generator.start").dtype == torch.float16
        assert f.get_tensor("bottleneck.dp_clip").dtype == torch.float32  # buffers stay fp32
    back = load_model(p16)
    for name, t in back.state_dict().items():
        if t.is_floating_point():
            assert t.dtype == torch.float32, name
    # DP parameters and statistics are stored exactly
    for name in ("dp_center", "dp_clip", "dp_output_norm", "input_mean", "input_std"):
        assert torch.equal(getattr(back.bottleneck, name), getattr(model.bottleneck, name)), name
    for name, p in model.named_parameters():
        q = back.get_parameter(name)
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4, msg=name)
    assert float((_probe(back) - _probe(model)).abs().max()) < 2e-2


def test_mismatch_error_lists_missing_unexpected_misshaped(model, tmp_path):
    good = tmp_path / "good.safetensors"
    save_model(model, good, summary=SUMMARY)
    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    del tensors["generator.blocks.0.conv1.weight"]
    tensors["generator.extra.weight"] = torch.zeros(3)
    tensors["bottleneck.proj.bias"] = torch.zeros(5)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(WeightsMismatchError) as info:
        load_model(bad)
    e = info.value
    assert e.missing == ["generator.blocks.0.conv1.weight"]
    assert e.unexpected == ["generator.extra.weight"]
    assert [m[0] for m in e.mis_shaped] == ["bottleneck.proj.bias"]
    msg = str(e)
    for text in ("missing 1 tensor", "generator.blocks.0.conv1.weight", "unexpected 1 tensor",
                 "generator.extra.weight", "mis-shaped 1 tensor", "bottleneck.proj.bias file [5]"):
        assert text in msg, (text, msg)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not an identitydp-fast AEI-Net weights file"):
        load_model(path)


def test_save_checks_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        save_model(model, tmp_path / "x.safetensors", dtype=torch.int8)
    with pytest.raises(ValueError, match="summary must be JSON-serialisable"):
        save_model(model, tmp_path / "x.safetensors", summary={"t": torch.zeros(1)})
    with pytest.raises(TypeError, match="must be an AEINet"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
