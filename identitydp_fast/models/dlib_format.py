"""A reader for dlib's binary serialisation (dlib/serialize.h, dlib/dnn/tensor.h).

Encodings (all little-endian):

* integer: one control byte ``c`` (``c & 0x0F`` = byte count n in 1..8, ``c & 0x80`` =
  negative, the other bits 0), then n bytes of |value|. Zero is ``01 00``.
* float/double: mantissa m (integer, up to 8 bytes) and exponent e (integer, up to 2
  bytes); value = m * 2^e, except e = 32000 / 32001 / 32002 = +inf / -inf / NaN.
* bool: one ASCII byte, ``'1'`` or ``'0'``.
* string: byte count (integer), then the bytes.
* tensor: version 2, then num_samples, k, nr, nc (integers), then num_samples*k*nr*nc
  raw float32 values. alias_tensor: version 1, then the four shape integers, no data.

Every read checks what it consumes: a malformed or truncated stream raises
``DlibFormatError`` (a ValueError) naming the byte offset and what was expected, never
an IndexError and never a silently wrong value.
"""
from __future__ import annotations

import math

import numpy as np

#: exponent codes of the special float values (dlib float_details).
EXP_INF, EXP_NINF, EXP_NAN = 32000, 32001, 32002
TENSOR_VERSION = 2
ALIAS_TENSOR_VERSION = 1


class DlibFormatError(ValueError):
    """The bytes are not the dlib serialisation that was expected.

    ``offset`` is the byte offset where the unexpected item starts; ``source`` names
    the stream (a file path or ``<bytes>``).
    """

    def __init__(self, message: str, offset: int, source: str):
        super().__init__(message)
        self.offset = offset
        self.source = source


class DlibReader:
    """Sequential reader over one dlib-serialised byte string.

    Every ``read_*`` takes ``what``: a description of the item (e.g. "layer 3 (con)
    filter count") used in the error message when the bytes do not fit.
    """

    def __init__(self, data: bytes | bytearray | memoryview, source: str = "<bytes>"):
        self._data = memoryview(bytes(data) if isinstance(data, bytearray) else data).cast("B")
        self._pos = 0
        self.source = source

    @property
    def offset(self) -> int:
        """Byte offset of the next read."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self._pos

    def error(self, what: str, problem: str, offset: int | None = None) -> DlibFormatError:
        """A DlibFormatError for the item ``what`` starting at ``offset`` (default: here)."""
        off = self._pos if offset is None else offset
        return DlibFormatError(f"{self.source}: byte offset {off}: expected {what}; {problem}",
                               off, self.source)

    def _take(self, n: int, what: str, start: int) -> memoryview:
        if n > self.remaining:
            raise self.error(what, f"the data ends after {len(self._data)} bytes "
                                   f"(needed {n} more at offset {self._pos}, {self.remaining} left): "
                                   "the file is truncated", start)
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def read_int(self, what: str, *, nbytes: int = 8, signed: bool = True) -> int:
        """An integer that dlib wrote from a C type of ``nbytes`` bytes (signed or not)."""
        start = self._pos
        ctrl = self._take(1, what, start)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70:
            raise self.error(what, f"control byte 0x{ctrl:02x} has reserved bits 0x70 set "
                                   "(not an integer: the stream is misaligned or corrupt)", start)
        if not 1 <= size <= nbytes:
            raise self.error(what, f"control byte 0x{ctrl:02x} gives {size} value bytes, "
                                   f"allowed 1..{nbytes} (misaligned or corrupt stream)", start)
        negative = bool(ctrl & 0x80)
        if negative and not signed:
            raise self.error(what, f"control byte 0x{ctrl:02x} marks a negative value for an "
                                   "unsigned field", start)
        magnitude = int.from_bytes(self._take(size, what, start), "little")
        value = -magnitude if negative else magnitude
        lo, hi = (-(1 << (8 * nbytes - 1)), (1 << (8 * nbytes - 1)) - 1) if signed else (
            0, (1 << (8 * nbytes)) - 1)
        if not lo <= value <= hi:
            raise self.error(what, f"value {value} does not fit a {nbytes}-byte "
                                   f"{'signed' if signed else 'unsigned'} integer", start)
        return value

    def expect_int(self, expected: int, what: str, *, nbytes: int = 8, signed: bool = True) -> int:
        """Read an integer and require it to equal ``expected``."""
        start = self._pos
        value = self.read_int(what, nbytes=nbytes, signed=signed)
        if value != expected:
            raise self.error(f"{what} = {expected}", f"found {value}", start)
        return value

    def read_float(self, what: str) -> float:
        """A float or double: mantissa * 2^exponent, or inf / -inf / NaN by exponent code."""
        start = self._pos
        mantissa = self.read_int(f"{what} (float mantissa)", nbytes=8)
        exponent = self.read_int(f"{what} (float exponent)", nbytes=2)
        if exponent == EXP_INF:
            return math.inf
        if exponent == EXP_NINF:
            return -math.inf
        if exponent == EXP_NAN:
            return math.nan
        if exponent > EXP_NAN:
            raise self.error(what, f"float exponent {exponent} is neither a number's exponent "
                                   f"(< {EXP_INF}) nor a special-value code", start)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:  # C's ldexp gives +-inf here, so does dlib
            return math.copysign(math.inf, mantissa)

    def read_bool(self, what: str) -> bool:
        """One ASCII byte, '1' (True) or '0' (False)."""
        start = self._pos
        byte = self._take(1, what, start)[0]
        if byte not in (0x30, 0x31):
            raise self.error(f"{what} (a bool: byte '0' or '1')", f"found byte 0x{byte:02x}", start)
        return byte == 0x31

    def read_string(self, what: str, *, max_len: int = 1 << 20) -> str:
        """A length-prefixed byte string, decoded as Latin-1 (dlib's names are ASCII)."""
        start = self._pos
        n = self.read_int(f"{what} (string length)", signed=False)
        if n > max_len:
            raise self.error(what, f"string length {n} exceeds {max_len} (misaligned stream)", start)
        return bytes(self._take(n, f"{what} ({n}-byte string)", start)).decode("latin-1")

    def expect_string(self, expected: str, what: str) -> str:
        """Read a string and require it to equal ``expected`` (dlib's layer type tags)."""
        start = self._pos
        value = self.read_string(f"{what} = {expected!r}", max_len=max(64, 4 * len(expected)))
        if value != expected:
            raise self.error(f"{what} = {expected!r}", f"found {value!r}", start)
        return value

    def _shape(self, what: str) -> tuple[int, int, int, int]:
        names = ("num_samples", "k", "nr", "nc")
        return tuple(self.read_int(f"{what} {n}", nbytes=8) for n in names)  # type: ignore[return-value]

    def read_tensor(self, what: str) -> np.ndarray:
        """A tensor: float32 array of shape (num_samples, k, nr, nc)."""
        start = self._pos
        self.expect_int(TENSOR_VERSION, f"{what} tensor version")
        shape = self._shape(f"{what} tensor")
        if min(shape) < 0:
            raise self.error(what, f"negative tensor shape {shape}", start)
        count = math.prod(shape)
        raw = self._take(4 * count, f"{what} tensor data ({count} float32 = {4 * count} bytes, "
                                    f"shape {shape})", start)
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)

    def read_alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        """An alias_tensor (a view's shape into a layer's params): the 4 shape integers."""
        start = self._pos
        self.expect_int(ALIAS_TENSOR_VERSION, f"{what} alias_tensor version")
        shape = self._shape(f"{what} alias_tensor")
        if min(shape) < 0:
            raise self.error(what, f"negative alias_tensor shape {shape}", start)
        return shape

    def expect_end(self, what: str = "the end of the data") -> None:
        """Require every byte to have been consumed."""
        if self.remaining:
            raise self.error(what, f"{self.remaining} unread bytes remain (the file holds more "
                                   "than the expected network)")
