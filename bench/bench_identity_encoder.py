"""Identity descriptors per second: dlib itself (compute_face_descriptor on uint8
chips, its own threads), the reference network, and the engine on each backend, at
batch 1 and 32, in one run. Encoder: identitydp_fast/pipeline/identity.py; engine:
identitydp_fast/engine/dlib_resnet.py; reference: identitydp_fast/reference/dlib_resnet.py;
test: tests/test_dlib_resnet_engine.py. FLOPs: ~2.9 GFLOP per descriptor (150x150 input)."""
import numpy as np
import pytest
import torch

from conftest import provider_device, provider_params

SIZES = [1, 32]


def _chips(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 150, 150, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("provider", ["dlib"])
def test_identity_encoder_dlib(benchmark, provider, size):
    dlib = pytest.importorskip("dlib")
    from identitydp_fast.pipeline.detect import model_path
    try:
        facerec = dlib.face_recognition_model_v1(str(model_path("resnet")))
    except RuntimeError as exc:
        pytest.skip(str(exc))
    chips = list(_chips(size))
    benchmark.group = "identity_encoder"
    benchmark.extra_info.update(items=size, unit="desc")
    benchmark(lambda: facerec.compute_face_descriptor(chips) if size > 1 else
              facerec.compute_face_descriptor(chips[0]))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("provider", provider_params())
def test_identity_encoder(benchmark, provider, size, sync):
    from identitydp_fast import IdentityEncoder
    dev = provider_device(provider)
    try:
        encoder = IdentityEncoder(backend=provider, device=dev)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        pytest.skip(str(exc))
    chips = torch.from_numpy(_chips(size)).to(dev)
    benchmark.group = "identity_encoder"
    benchmark.extra_info.update(items=size, unit="desc")
    encoder(chips)  # warm-up (cuDNN / oneDNN algorithm choice)

    def run():
        encoder(chips)
        sync()

    benchmark(run)
