"""Every Python code block of the README runs.

The README shows the API with the user's own variables (``img``, ``secret_key``, ``mu``,
...). Each block gets a prelude that defines them the way a user would (a real photo,
real faces, real descriptors), then the block runs verbatim. A block without a prelude
fails the test, so a new README block cannot go untested.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ASTRONAUT = ROOT / "examples" / "astronaut.png"

#: keyed by the block's first line; each prelude runs in the block's namespace first
PRELUDES = {
    "import identitydp_fast as idp\nfrom PIL import Image": """
import secrets
import numpy as np
from PIL import Image as _Image
_Image.open(ASTRONAUT).convert("RGB").save("photo.jpg", quality=95)
img = np.array(_Image.open(ASTRONAUT).convert("RGB"))
secret_key = secrets.token_bytes(32)
import identitydp_fast as _idp
my_face_records = _idp.detect_faces(img)
from identitydp_fast.pipeline import align as _align
_a = _idp.Anonymizer()
_crops, _ = _align.model_crops(img, np.stack([f.landmarks for f in my_face_records]),
                               _a.crop_size, "reference", _a.eyes_y)
aligned_crops = ((_crops.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
""",
    "import torch, identitydp_fast as idp": """
import secrets
import torch as _torch
vectors = _torch.randn(5, 128) + 1.0
mu = _torch.nn.functional.normalize(_torch.ones(128), dim=0) * 0.5
my_32_bytes = secrets.token_bytes(32)
key, nonce, counter, length = secrets.token_bytes(32), secrets.token_bytes(12), 1, 64
""",
    "import identitydp_fast as idp\nfrom identitydp_fast.pipeline.decode import read_image": "",
    "from identitydp_fast.reference.aei_net import AEINet": """
import torch as _torch
descriptors = _torch.nn.functional.normalize(_torch.randn(3, 128), dim=1) * 1.4
crops = _torch.rand(3, 3, 128, 128) * 2 - 1
""",
}


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _prelude(block: str) -> str:
    for head, prelude in PRELUDES.items():
        if block.startswith(head):
            return prelude
    raise AssertionError("a README code block has no prelude in tests/test_readme.py; add one:\n"
                         + block[:200])


BLOCKS = _python_blocks()


def test_the_readme_has_code_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    block = BLOCKS[index]
    prelude = _prelude(block)
    if "Anonymizer(" in block + prelude:
        from identitydp_fast.pipeline.generate import DEFAULT_MODEL_PATH

        if not Path(DEFAULT_MODEL_PATH).is_file():
            pytest.skip(f"the default model {DEFAULT_MODEL_PATH} is not in the tree")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace = {"ASTRONAUT": str(ASTRONAUT), "__name__": "readme"}
    exec(compile(prelude, "prelude", "exec"), namespace)
    exec(compile(block, f"README.md block {index + 1}", "exec"), namespace)
