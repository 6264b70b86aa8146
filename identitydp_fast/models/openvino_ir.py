"""A small reader of OpenVINO IR v10 files (``model.xml`` + ``model.bin``): the graph's
layers and edges, and every constant as a numpy array.

It reads; it does not run anything. The project uses it once, to convert the pretrained
MobileStyleGAN prior shipped as IR in the ``random-face`` package into its own safetensors
(identitydp_fast/models/mobile_stylegan.py); at run time neither openvino nor random-face is
needed. openvino itself is only the test oracle (tests/test_mobile_stylegan.py).

Format (IR v10): ``<net><layers><layer id type name><data .../><input><port>...</input>
<output><port id><dim>..</dim></port></output></layer>...</layers><edges><edge from-layer
from-port to-layer to-port/>...</edges></net>``. A ``Const`` layer's ``data`` gives
``element_type``, ``shape``, ``offset`` and ``size`` (bytes) into the ``.bin`` file, stored
little-endian. Every error names the file and what is wrong with it.
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

#: IR element types the reader understands -> numpy dtype (little-endian)
ELEMENT_TYPES = {"f32": "<f4", "f16": "<f2", "f64": "<f8", "i64": "<i8", "i32": "<i4",
                 "u8": "u1", "i8": "i1", "boolean": "u1"}


class IRFormatError(ValueError):
    """An IR file is missing, truncated or not what the reader expects."""


@dataclasses.dataclass(frozen=True)
class IRLayer:
    """One layer: ``inputs[k]`` is (producer layer id, producer output port) of input port k
    (ports in the order of their ids); ``out_shapes`` the shapes of the output ports."""
    id: int
    type: str
    name: str
    attrs: dict
    inputs: tuple[tuple[int, int], ...]
    out_shapes: tuple[tuple[int, ...], ...]


class IRGraph:
    """The layers of one IR model, with their constants readable as arrays."""

    def __init__(self, xml_path: str | Path, bin_path: str | Path | None = None):
        self.xml_path = Path(xml_path)
        self.bin_path = Path(bin_path) if bin_path is not None else self.xml_path.with_suffix(".bin")
        for path in (self.xml_path, self.bin_path):
            if not path.is_file():
                raise FileNotFoundError(f"OpenVINO IR file {path} not found")
        try:
            root = ET.parse(self.xml_path).getroot()
        except ET.ParseError as err:
            raise IRFormatError(f"{self.xml_path}: not a readable XML file ({err})") from None
        if root.tag != "net" or root.find("layers") is None or root.find("edges") is None:
            raise IRFormatError(f"{self.xml_path}: not an OpenVINO IR model (no <net><layers><edges>)")
        if root.get("version") not in ("10", "11"):
            raise IRFormatError(f"{self.xml_path}: IR version {root.get('version')!r}; this reader "
                                f"knows versions 10 and 11")
        self._bin = np.memmap(self.bin_path, dtype="u1", mode="r") if self.bin_path.stat().st_size else np.zeros(0, "u1")
        edges: dict[int, dict[int, tuple[int, int]]] = {}
        for e in root.find("edges"):
            edges.setdefault(int(e.get("to-layer")), {})[int(e.get("to-port"))] = (
                int(e.get("from-layer")), int(e.get("from-port")))
        self.layers: dict[int, IRLayer] = {}
        for el in root.find("layers"):
            lid = int(el.get("id"))
            data = el.find("data")
            out = el.find("output")
            shapes = tuple(tuple(int(d.text) for d in port) for port in out) if out is not None else ()
            ins = edges.get(lid, {})
            self.layers[lid] = IRLayer(lid, el.get("type"), el.get("name"),
                                       dict(data.attrib) if data is not None else {},
                                       tuple(ins[k] for k in sorted(ins)), shapes)
        self._consumers: dict[int, list[int]] = {}
        for lid, layer in sorted(self.layers.items()):
            for src, _ in layer.inputs:
                self._consumers.setdefault(src, []).append(lid)
        self._by_name = {}
        for layer in self.layers.values():
            self._by_name.setdefault(layer.name, layer)

    # -- constants -------------------------------------------------------------------
    def const(self, layer: IRLayer | int | str) -> np.ndarray:
        """The value of a Const layer (by layer, id or name) as a float32/int array."""
        layer = self.layer(layer)
        if layer.type != "Const":
            raise IRFormatError(f"{self.xml_path}: layer {layer.name!r} is a {layer.type}, not a Const")
        a = layer.attrs
        etype = a.get("element_type")
        if etype not in ELEMENT_TYPES:
            raise IRFormatError(f"{self.xml_path}: Const {layer.name!r} has element type {etype!r}; "
                                f"known: {sorted(ELEMENT_TYPES)}")
        shape = tuple(int(s) for s in a.get("shape", "").replace(" ", "").split(",") if s != "")
        offset, size = int(a["offset"]), int(a["size"])
        dtype = np.dtype(ELEMENT_TYPES[etype])
        if size != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise IRFormatError(f"{self.xml_path}: Const {layer.name!r} of shape {shape} {etype} "
                                f"declares {size} bytes")
        if offset + size > self._bin.size:
            raise IRFormatError(f"{self.bin_path}: truncated: Const {layer.name!r} needs bytes "
                                f"[{offset}, {offset + size}) of a {self._bin.size}-byte file")
        return np.frombuffer(self._bin[offset:offset + size].tobytes(), dtype=dtype).reshape(shape).copy()

    # -- navigation -------------------------------------------------------------------
    def layer(self, ref: IRLayer | int | str) -> IRLayer:
        if isinstance(ref, IRLayer):
            return ref
        found = self.layers.get(ref) if isinstance(ref, int) else self._by_name.get(ref)
        if found is None:
            raise IRFormatError(f"{self.xml_path}: no layer {ref!r} (is this the right model file?)")
        return found

    def producer(self, layer: IRLayer | int | str, port: int) -> IRLayer:
        """The layer feeding input port ``port`` of ``layer``."""
        layer = self.layer(layer)
        if port >= len(layer.inputs):
            raise IRFormatError(f"{self.xml_path}: layer {layer.name!r} has {len(layer.inputs)} inputs, "
                                f"asked for input {port}")
        return self.layers[layer.inputs[port][0]]

    def consumers(self, layer: IRLayer | int | str, type: str | None = None) -> list[IRLayer]:
        """Layers reading any output of ``layer`` (of one type, if given), in id order."""
        layer = self.layer(layer)
        found = [self.layers[c] for c in self._consumers.get(layer.id, [])]
        return [c for c in found if type is None or c.type == type]

    def only_consumer(self, layer: IRLayer | int | str, type: str) -> IRLayer:
        """The single consumer of ``layer`` of the given type; an error names what was found."""
        layer = self.layer(layer)
        found = self.consumers(layer, type)
        if len(found) != 1:
            raise IRFormatError(f"{self.xml_path}: expected one {type} after {layer.name!r}, found "
                                f"{[c.name for c in found]} (the graph is not the expected model)")
        return found[0]

    def const_input(self, layer: IRLayer | int | str, port: int | None = None) -> np.ndarray:
        """The constant feeding ``layer`` at ``port`` (or its only constant input)."""
        layer = self.layer(layer)
        if port is not None:
            return self.const(self.producer(layer, port))
        consts = [self.layers[s] for s, _ in layer.inputs if self.layers[s].type == "Const"]
        if len(consts) != 1:
            raise IRFormatError(f"{self.xml_path}: layer {layer.name!r} has {len(consts)} constant "
                                f"inputs, expected one")
        return self.const(consts[0])

    def of_type(self, type: str) -> list[IRLayer]:
        return [layer for _, layer in sorted(self.layers.items()) if layer.type == type]
