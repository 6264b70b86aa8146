"""dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat, CC0): locate
the file and read it into shape-checked weights.

The file stores weights, not structure, so the structure is hard-coded here from dlib's
``dnn_face_recognition_ex.cpp``::

    input: RGB 150x150, x = (pixel - mean_c) / 256
    stem:  con 32 7x7/2 (unpadded) -> affine -> relu -> max_pool 3x3/2 (unpadded)
    14 residual blocks (BLOCKS), each  relu(add_prev(main, shortcut)):
        main     = affine(con 3x3/1(relu(affine(con 3x3/s(x)))))
        shortcut = x                            (s = 1, "ares")
                 = avg_pool 2x2/2(x)            (s = 2, "ares_down"; conv unpadded)
    head:  avg_pool_everything -> fc_no_bias 128 (x @ W)
    = 29 con, 29 affine, 29 relu, 14 add_prev, 5 avg_pool, 1 max_pool, 1 fc.

File layout (dlib/dnn/core.h, loss.h, layers.h, input.h): the loss layer comes first
(version 1, "loss_metric_2", margin, distance threshold); then the network nests from
output to input, each layer writing its version before its sub-network and its own
settings after, so the file holds all 130 versions (2 per computational layer, 1 per
tag/skip layer, 3 for the layer right above the input), then the input layer, then each
computational layer's settings from input to output, each followed by 3 bools and 3
(training-state) tensors; the version-3 layer adds one int (sample expansion factor).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib

import numpy as np
import torch

from .dlib_format import DlibReader

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
STEM_CHANNELS, STEM_KERNEL, STEM_STRIDE = 32, 7, 2
#: residual blocks from input to output: (channels, downsample). A downsampling block
#: has a stride-2 first conv and an avg-pooled shortcut (dlib's ares_down).
BLOCKS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3                       # alevel4
    + ((64, True),) + ((64, False),) * 3     # alevel3
    + ((128, True),) + ((128, False),) * 2   # alevel2
    + ((256, True),) + ((256, False),) * 2   # alevel1
    + ((256, True),))                        # alevel0
LOSS_TYPE = "loss_metric_2"


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors: compare by identity
class ConvWeights:
    """One con_ layer: y = conv2d(x, weight, bias, stride, padding).

    weight: (out, in, kh, kw) float32 (dlib's filter layout is already torch's);
    bias: (out,) float32.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    padding: int


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors: compare by identity
class AffineWeights:
    """One affine_ layer (batch norm folded), per channel: y = gamma_c * x + beta_c. (C,) each."""

    gamma: torch.Tensor
    beta: torch.Tensor


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors: compare by identity
class DlibResNetWeights:
    """Every weight of the network, in input -> output order.

    input_mean: (3,) float32 RGB channel means (the input is (pixel - mean_c) / 256).
    convs: 29 ConvWeights: the stem, then (first, second) conv of each block in BLOCKS.
    affines: 29 AffineWeights, one after each conv, same order.
    fc_weight: (128, 256) float32, torch layout: descriptor = pooled @ fc_weight.T.
    margin, distance_threshold: the metric loss settings (0.04, 0.6: same person when
    the descriptor distance is below 0.6).
    source: where the weights came from.
    """

    input_mean: torch.Tensor
    convs: tuple[ConvWeights, ...]
    affines: tuple[AffineWeights, ...]
    fc_weight: torch.Tensor
    margin: float
    distance_threshold: float
    source: str


def find_model_file(name: str = MODEL_FILE) -> pathlib.Path:
    """Path of ``name`` ($IDP_MODEL_DIR or the installed face_recognition_models package;
    see identitydp_fast/models/files.py)."""
    from .files import model_file
    return model_file(name)


@dataclasses.dataclass(frozen=True)
class _Layer:
    """One layer of the hard-coded structure. kind: con, affine, relu, max_pool, avg_pool,
    add_prev, tag, skip, fc. args: con (in, out, kernel, stride), affine (channels,),
    pools (window, stride), fc (in, out). where: for error messages."""

    kind: str
    args: tuple[int, ...]
    where: str


def _layers() -> list[_Layer]:
    """The network's layers from input to output, as dlib nests them."""
    out = [_Layer("con", (3, STEM_CHANNELS, STEM_KERNEL, STEM_STRIDE), "stem"),
           _Layer("affine", (STEM_CHANNELS,), "stem"), _Layer("relu", (), "stem"),
           _Layer("max_pool", (3, 2), "stem")]
    ch = STEM_CHANNELS
    for b, (n, down) in enumerate(BLOCKS):
        w = f"block {b + 1} of {len(BLOCKS)} ({n} ch{', down' if down else ''})"
        out += [_Layer("tag", (), w),  # tag1: the shortcut's source
                _Layer("con", (ch, n, 3, 2 if down else 1), w), _Layer("affine", (n,), w),
                _Layer("relu", (), w),
                _Layer("con", (n, n, 3, 1), w), _Layer("affine", (n,), w)]
        if down:  # tag2<main>, skip1 back to x, avg_pool(x), add_prev2
            out += [_Layer("tag", (), w), _Layer("skip", (), w), _Layer("avg_pool", (2, 2), w)]
        out += [_Layer("add_prev", (), w), _Layer("relu", (), w)]
        ch = n
    out += [_Layer("avg_pool", (0, 1), "head (avg_pool_everything)"),
            _Layer("fc", (ch, DESCRIPTOR_DIM), "head")]
    return out


def load_dlib_resnet_weights(path: str | os.PathLike | None = None, *,
                             verify: bool = True) -> DlibResNetWeights:
    """Read dlib's face-recognition ResNet file into checked weights.

    path: the .dat file (default: find_model_file()). Every layer's type tag, settings
    and tensor shapes are checked against the hard-coded structure; a mismatch raises
    DlibFormatError naming the byte offset and the layer, and so does a NaN or inf
    weight. verify=True also requires the whole file to be consumed (False: a file with
    extra bytes after the network still loads).
    """
    path = find_model_file() if path is None else pathlib.Path(path)
    reader = DlibReader(path.read_bytes(), source=str(path))
    layers = _layers()
    n = len(layers)

    reader.expect_int(1, "loss layer version", nbytes=4)
    reader.expect_string(LOSS_TYPE, "loss layer type (this reader knows the metric-loss "
                                    "face-recognition ResNet only)")
    margin = reader.read_float("loss_metric margin")
    threshold = reader.read_float("loss_metric distance threshold")

    # versions, outermost layer first (the recursion writes them before any settings)
    for i in reversed(range(n)):
        layer = layers[i]
        version = 1 if layer.kind in ("tag", "skip") else 3 if i == 0 else 2
        reader.expect_int(version, f"{_describe(i, n, layer)} version "
                                   "(a different network structure?)", nbytes=4)

    reader.expect_string("input_rgb_image_sized", "input layer type")
    mean = []
    for c in ("red", "green", "blue"):
        start = reader.offset
        mean.append(reader.read_float(f"input layer mean of {c}"))
        if not 0.0 <= mean[-1] <= 255.0:
            raise reader.error(f"input layer mean of {c} in [0, 255]", f"found {mean[-1]}", start)
    reader.expect_int(CHIP_SIZE, "input layer rows")
    reader.expect_int(CHIP_SIZE, "input layer columns")

    convs: list[ConvWeights] = []
    affines: list[AffineWeights] = []
    fc_weight = None
    for i, layer in enumerate(layers):
        what = _describe(i, n, layer)
        if layer.kind in ("tag", "skip"):
            continue  # version + sub-network only
        if layer.kind == "con":
            convs.append(_read_con(reader, what, *layer.args))
        elif layer.kind == "affine":
            affines.append(_read_affine(reader, what, *layer.args))
        elif layer.kind == "relu":
            reader.expect_string("relu_", f"{what} type")
        elif layer.kind == "add_prev":
            reader.expect_string("add_prev_", f"{what} type")
        elif layer.kind in ("max_pool", "avg_pool"):
            _read_pool(reader, what, layer.kind, *layer.args)
        elif layer.kind == "fc":
            fc_weight = _read_fc(reader, what, *layer.args)
        else:  # pragma: no cover - _layers() makes only the kinds above
            raise AssertionError(layer.kind)
        # training state: this_layer_setup_called, gradient_input_is_stale,
        # get_output_and_gradient_input_disabled, then x_grad, cached_output, params_grad
        for flag in ("setup_called", "gradient_input_is_stale", "output_disabled"):
            reader.read_bool(f"{what} {flag} flag")
        for t in ("x_grad", "cached_output", "params_grad"):
            reader.read_tensor(f"{what} {t}")
        if i == 0:
            reader.expect_int(1, f"{what} sample expansion factor (the layer above the input)")

    if verify:
        reader.expect_end("the end of the file after the fc layer")
    return DlibResNetWeights(
        input_mean=torch.tensor(mean, dtype=torch.float32), convs=tuple(convs),
        affines=tuple(affines), fc_weight=fc_weight, margin=margin,
        distance_threshold=threshold, source=str(path))


def _describe(i: int, n: int, layer: _Layer) -> str:
    args = {"con": lambda a: f"con {a[2]}x{a[2]}/{a[3]} {a[0]}->{a[1]}",
            "affine": lambda a: f"affine {a[0]}",
            "max_pool": lambda a: f"max_pool {a[0]}x{a[0]}/{a[1]}",
            "avg_pool": lambda a: f"avg_pool {a[0]}x{a[0]}/{a[1]}",
            "fc": lambda a: f"fc {a[0]}->{a[1]}"}.get(layer.kind, lambda a: layer.kind)
    return f"layer {i + 1} of {n} ({args(layer.args)}, {layer.where})"


def _expect_shape(reader: DlibReader, got: tuple, want: tuple, what: str, start: int) -> None:
    if tuple(got) != tuple(want):
        raise reader.error(f"{what} of shape {tuple(want)}", f"found shape {tuple(got)}", start)


def _read_params(reader: DlibReader, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """A layer's params tensor of the given shape, all finite (a NaN would silently
    poison every descriptor)."""
    start = reader.offset
    params = reader.read_tensor(f"{what} params")
    _expect_shape(reader, params.shape, shape, f"{what} params", start)
    bad = np.flatnonzero(~np.isfinite(params))
    if bad.size:
        data_start = reader.offset - 4 * params.size
        raise reader.error(f"{what} params: finite float32 values",
                           f"found {bad.size} NaN/inf, the first at value {bad[0]} "
                           f"(byte offset {data_start + 4 * int(bad[0])}): the file is corrupt",
                           start)
    return params


def _read_multipliers(reader: DlibReader, what: str, names: tuple[str, ...]) -> None:
    for name in names:  # learning-rate / weight-decay multipliers: training only
        reader.read_float(f"{what} {name}")


def _read_con(reader: DlibReader, what: str, cin: int, cout: int, k: int,
              stride: int) -> ConvWeights:
    """con_4: params, num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x,
    filters alias (out, in, k, k), biases alias (1, out, 1, 1), 4 multipliers."""
    # dlib's default padding: k/2 for stride 1, 0 otherwise (so the /2 convs are unpadded)
    pad = k // 2 if stride == 1 else 0
    reader.expect_string("con_4", f"{what} type")
    n_filter = cout * cin * k * k
    params = _read_params(reader, what, (n_filter + cout, 1, 1, 1))
    for value, name in ((cout, "num_filters"), (k, "nr"), (k, "nc"), (stride, "stride_y"),
                        (stride, "stride_x"), (pad, "padding_y"), (pad, "padding_x")):
        reader.expect_int(value, f"{what} {name}")
    start = reader.offset
    _expect_shape(reader, reader.read_alias_tensor(f"{what} filters"), (cout, cin, k, k),
                  f"{what} filters", start)
    start = reader.offset
    _expect_shape(reader, reader.read_alias_tensor(f"{what} biases"), (1, cout, 1, 1),
                  f"{what} biases", start)
    _read_multipliers(reader, what, ("learning_rate_multiplier", "weight_decay_multiplier",
                                     "bias_learning_rate_multiplier",
                                     "bias_weight_decay_multiplier"))
    flat = params.reshape(-1)
    return ConvWeights(weight=torch.from_numpy(flat[:n_filter].reshape(cout, cin, k, k).copy()),
                       bias=torch.from_numpy(flat[n_filter:].copy()), stride=stride, padding=pad)


def _read_affine(reader: DlibReader, what: str, ch: int) -> AffineWeights:
    """affine_: params (gamma then beta), gamma alias, beta alias, mode (0 = per channel)."""
    reader.expect_string("affine_", f"{what} type")
    params = _read_params(reader, what, (2 * ch, 1, 1, 1))
    for name in ("gamma", "beta"):
        start = reader.offset
        _expect_shape(reader, reader.read_alias_tensor(f"{what} {name}"), (1, ch, 1, 1),
                      f"{what} {name}", start)
    reader.expect_int(0, f"{what} mode (0 = CONV_MODE, per-channel)", nbytes=4)
    flat = params.reshape(-1)
    return AffineWeights(gamma=torch.from_numpy(flat[:ch].copy()),
                         beta=torch.from_numpy(flat[ch:].copy()))


def _read_pool(reader: DlibReader, what: str, kind: str, window: int, stride: int) -> None:
    """max_pool_2 / avg_pool_2: nr, nc, stride_y, stride_x, padding_y, padding_x.
    window 0 = the whole input (avg_pool_everything); padding 0 (dlib: stride != 1)."""
    reader.expect_string(f"{kind}_2", f"{what} type")
    for value, name in ((window, "nr"), (window, "nc"), (stride, "stride_y"),
                        (stride, "stride_x"), (0, "padding_y"), (0, "padding_x")):
        reader.expect_int(value, f"{what} {name}")


def _read_fc(reader: DlibReader, what: str, cin: int, cout: int) -> torch.Tensor:
    """fc_2: num_outputs, num_inputs, params (in, out, 1, 1), weights alias (in, out), biases alias
    (empty: no bias), bias mode (1 = FC_NO_BIAS), 4 multipliers. Returns W^T (out, in)."""
    reader.expect_string("fc_2", f"{what} type")
    reader.expect_int(cout, f"{what} num_outputs")
    reader.expect_int(cin, f"{what} num_inputs")
    # (num_inputs + 1 if there were a bias row, num_outputs)
    params = _read_params(reader, what, (cin, cout, 1, 1))
    start = reader.offset
    _expect_shape(reader, reader.read_alias_tensor(f"{what} weights"), (cin, cout, 1, 1),
                  f"{what} weights", start)
    start = reader.offset
    _expect_shape(reader, reader.read_alias_tensor(f"{what} biases"), (0, 0, 0, 0),
                  f"{what} biases (none: fc_no_bias)", start)
    reader.expect_int(1, f"{what} bias mode (1 = FC_NO_BIAS)", nbytes=4)
    _read_multipliers(reader, what, ("learning_rate_multiplier", "weight_decay_multiplier",
                                     "bias_learning_rate_multiplier",
                                     "bias_weight_decay_multiplier"))
    # dlib computes x @ W with W (in, out) row-major; torch's linear wants W^T (out, in)
    return torch.from_numpy(np.ascontiguousarray(params.reshape(cin, cout).T))
