"""Image files in, image files out: decode a photo for anonymisation and write the result
back in the input's own format (what ``identitydp anonymize`` uses).

``decode_file(path)`` / ``decode_bytes(data)`` return a :class:`DecodedImage`: the upright
(H, W, 3) uint8 RGB pixels the anonymiser works on, plus what is needed to write the
result like the input (format, grey or colour, alpha, metadata). ``encode(decoded, rgb)``
returns the bytes of the output file. Every problem with a file raises
:class:`ImageFileError` (a ValueError) with a one-line message naming it; nothing else
escapes ``decode_*`` (Pillow's decoders raise many exception types on hostile input, so
every ``Exception`` from them is wrapped; tests/test_fuzz_decode.py checks this).

Decoding:

* EXIF orientation is applied (the pixels come out upright) and the output carries no
  orientation tag, so every viewer shows it the same way.
* Pixel limit: ``max_pixels`` (default 50 megapixels, pipeline.decode.MAX_PIXELS) is
  checked from the header, before any pixel is decoded (decompression bombs). Pillow's
  own bomb check (2 x 89 MP) still applies above that.
* Refused: empty, non-image, truncated or corrupt files; multi-frame images (animated
  GIF/PNG/WebP, multi-page TIFF: only one frame would be anonymised); 32-bit float
  (mode F) images; formats Pillow reads but cannot write (PSD, ICO, ...).
* Phones' MPO JPEGs: the main image is anonymised and written as a plain JPEG; the extra
  frames (previews, depth maps, which show the same faces) are dropped.

Modes (what comes out):

==================  =============================================================
input mode          output
==================  =============================================================
RGB                 RGB
L                   L (the anonymiser sees R = G = B; written back as grey, exact)
1 (bilevel)         L (8-bit grey)
LA, or L with a     L + the input's alpha, unchanged
transparent colour
RGBA, RGB with a    RGB + the input's alpha, unchanged (formats without alpha, like
transparent colour  JPEG and BMP, never carry one)
P (palette)         RGB, or RGBA when it has transparency; GIF output is re-quantised
                    by Pillow to a 256-colour palette
I;16 (16-bit grey)  I;16: the anonymiser sees value / 257 rounded; pixels it left
                    unchanged keep their 16-bit value, changed ones are written as
                    8-bit luma * 257
I (32-bit grey)     L, 8-bit: value clipped to 0..65535, / 257 rounded (noted)
CMYK, YCbCr, LAB    RGB by Pillow's conversion (no colour management); the input's
                    ICC profile, which describes the old colour space, is not carried
==================  =============================================================

Writing: the input's format (by content, not by extension). JPEG at quality 95 with the
input's chroma subsampling and progressive flag; lossless WebP stays lossless, lossy WebP
at quality 95; TIFF keeps a lossless compression (other TIFF compressions become LZW);
PNG, BMP, GIF, PPM, TGA and the rest with Pillow's defaults. Kept metadata: the ICC
profile (where it still describes the pixels), DPI, and (JPEG, PNG, WebP) EXIF by the
``metadata`` policy:

* ``"safe"`` (the default): only the allow-listed EXIF tags that describe how to display
  the pixels (SAFE_EXIF_TAGS: resolution, colour space, YCbCr positioning, gamma). GPS
  position, dates, Artist, Copyright, camera make/model/owner/serial numbers, the maker
  note, the thumbnail, user comments and every other tag are dropped: an anonymiser must
  not pass on who took the photo, where, when, or with which device;
* ``"keep"``: the input's EXIF minus the orientation tag, the embedded thumbnail (IFD1,
  which would show the original faces) and the maker note (vendor previews, face data);
* ``"none"``: no EXIF at all.

XMP (it can name the people in the photo), IPTC, comments, PNG text chunks and TIFF tags
other than resolution, ICC and compression are never carried.
"""
from __future__ import annotations

import dataclasses
import io
import os

import numpy as np

from ..pipeline.decode import MAX_PIXELS

__all__ = ["ImageFileError", "DecodedImage", "decode_file", "decode_bytes", "encode", "MAX_PIXELS"]

#: formats written back as they came (MPO is written as JPEG); others are refused
WRITABLE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "PPM", "TGA",
                    "JPEG2000", "QOI", "SGI", "PCX", "AVIF")
_LOSSLESS_TIFF = ("raw", "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits")
_EXIF_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_EXIF_MAKERNOTE = 0x927C
METADATA_POLICIES = ("safe", "keep", "none")
#: IFD0 tags kept by the "safe" policy: they say how to display the pixels, nothing else
SAFE_IFD0_TAGS = frozenset({0x011A, 0x011B, 0x0128,   # XResolution, YResolution, ResolutionUnit
                            0x0213})                   # YCbCrPositioning
#: Exif sub-IFD tags kept by the "safe" policy
SAFE_EXIF_IFD_TAGS = frozenset({0xA001,               # ColorSpace (sRGB / uncalibrated)
                                0xA500})              # Gamma
SAFE_EXIF_TAGS = SAFE_IFD0_TAGS | SAFE_EXIF_IFD_TAGS


class ImageFileError(ValueError):
    """A file that cannot be anonymised as an image; the message (one line) says why."""


@dataclasses.dataclass
class DecodedImage:
    """A decoded photo and how to write it back.

    rgb: (H, W, 3) uint8, upright: what the anonymiser works on.
    alpha: (H, W) uint8 alpha channel re-attached on output, or None.
    out_mode: "RGB", "L" or "I;16": the colour mode written (with alpha: RGBA or LA).
    grey16: (H, W) uint16 original values of a 16-bit grey image (out_mode "I;16"), else None.
    format: Pillow format name the output is written in ("JPEG", "PNG", ...).
    input_mode: the file's Pillow mode, for reports.
    save_params: keyword arguments for PIL.Image.save (metadata, quality, compression).
    notes: conversions the output shows (16-bit -> 8-bit, CMYK -> RGB, ...), for reports.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    out_mode: str
    format: str
    input_mode: str
    save_params: dict
    notes: list[str]
    grey16: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageFileError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageFileError(f"image is {width}x{height} = {width * height} pixels, over the pixel "
                             f"limit {max_pixels} (decompression-bomb guard)")


def check_metadata_policy(metadata: str) -> str:
    if metadata not in METADATA_POLICIES:
        raise ValueError(f"metadata must be one of {METADATA_POLICIES}, got {metadata!r}")
    return metadata


def _clean_exif(img, metadata: str) -> bytes | None:
    """The EXIF block to write, by the metadata policy (module docstring); None when
    nothing is left."""
    from PIL import Image

    raw = img.info.get("exif")
    if metadata == "none" or not raw:
        return None
    src = Image.Exif()
    src.load(raw if raw[:6] == b"Exif\x00\x00" else b"Exif\x00\x00" + raw)
    if metadata == "safe":
        exif = Image.Exif()  # built up from the allow-list: what is not named is not copied
        for tag in SAFE_IFD0_TAGS & set(src):
            exif[tag] = src[tag]
        sub = src.get_ifd(_EXIF_IFD) if _EXIF_IFD in src else {}
        kept = {tag: sub[tag] for tag in SAFE_EXIF_IFD_TAGS & set(sub)}
        if kept:
            exif[_EXIF_IFD] = kept
    else:
        exif = src
        exif.pop(_EXIF_ORIENTATION, None)
        if _EXIF_IFD in exif:
            # get_ifd returns the live sub-IFD that tobytes() writes
            exif.get_ifd(_EXIF_IFD).pop(_EXIF_MAKERNOTE, None)
    if not len(exif):
        return None
    # Exif.tobytes writes IFD0 with its Exif/GPS sub-IFDs and never IFD1 (the thumbnail)
    return exif.tobytes()


def _webp_is_lossless(fp) -> bool:
    """True when the WebP bitstream is VP8L (lossless): scan the RIFF chunk headers."""
    fp.seek(12)
    for _ in range(64):
        head = fp.read(8)
        if len(head) < 8:
            return False
        tag, size = head[:4], int.from_bytes(head[4:], "little")
        if tag == b"VP8L":
            return True
        if tag == b"VP8 ":
            return False
        fp.seek(size + (size & 1), os.SEEK_CUR)
    return False


def _save_params(img, fmt: str, fp, icc: bytes | None, exif: bytes | None, notes: list[str]) -> dict:
    params: dict = {}
    dpi = img.info.get("dpi")
    if icc:
        params["icc_profile"] = icc
    if fmt == "JPEG":
        from PIL import JpegImagePlugin

        params["quality"] = 95
        sampling = JpegImagePlugin.get_sampling(img) if img.format in ("JPEG", "MPO") else -1
        if sampling in (0, 1, 2):
            params["subsampling"] = sampling
        if img.info.get("progressive") or img.info.get("progression"):
            params["progressive"] = True
    elif fmt == "WEBP":
        if _webp_is_lossless(fp):
            params["lossless"] = True
        else:
            params["quality"] = 95
    elif fmt == "TIFF":
        comp = img.info.get("compression", "raw")
        if comp not in _LOSSLESS_TIFF:
            notes.append(f"TIFF compression {comp} written as tiff_lzw")
            comp = "tiff_lzw"
        params["compression"] = comp
    if fmt in ("JPEG", "PNG", "WEBP") and exif:
        params["exif"] = exif
    if fmt in ("JPEG", "PNG", "TIFF") and dpi:
        params["dpi"] = dpi
    if fmt not in ("JPEG", "PNG", "WEBP", "TIFF", "AVIF", "JPEG2000"):
        params.pop("icc_profile", None)
    return params


def _decode(fp, max_pixels: int, metadata: str) -> DecodedImage:
    from PIL import Image, ImageOps

    Image.init()  # load every plugin, so Image.SAVE lists every writer
    try:
        img = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise ImageFileError(f"over Pillow's decompression-bomb limit: {_one_line(exc)}") from None
    except Image.UnidentifiedImageError:
        raise ImageFileError("not an image file Pillow can read (unknown or corrupt header)") from None
    with img:
        fmt = img.format or "?"
        _check_pixels(img.width, img.height, max_pixels)   # before decoding a pixel
        notes: list[str] = []
        n_frames = getattr(img, "n_frames", 1)
        if fmt == "MPO":
            if n_frames > 1:
                notes.append(f"MPO: {n_frames - 1} extra frame(s) (previews/depth) dropped")
            out_fmt = "JPEG"
        else:
            if n_frames > 1:
                raise ImageFileError(f"{fmt} file has {n_frames} frames (animation or pages); only "
                                     "single-frame images are anonymised (a frame left as is would "
                                     "keep its faces)")
            out_fmt = fmt
        if out_fmt not in WRITABLE_FORMATS or out_fmt not in Image.SAVE:
            raise ImageFileError(f"{fmt} files can be read but not written back by Pillow here; "
                                 "convert the file to PNG or JPEG first")
        if img.mode == "F":
            raise ImageFileError("32-bit float image (mode F) is not supported; convert it to 8 or "
                                 "16-bit first")
        img.load()  # decode now: truncated and corrupt data fail here
        mode = img.mode
        icc = img.info.get("icc_profile")
        exif = _clean_exif(img, metadata)
        params = _save_params(img, out_fmt, fp, icc, exif, notes)
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        upright = ImageOps.exif_transpose(img)
        if orientation not in (None, 1):
            notes.append(f"EXIF orientation {orientation} applied")
        transparent = "transparency" in img.info
        alpha = grey16 = None
        if mode in ("1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N", "I"):
            out_mode = "L"
            if mode.startswith("I"):
                arr = np.asarray(upright).astype(np.int64).clip(0, 65535)
                grey = ((arr + 128) // 257).astype(np.uint8)  # 65535 -> 255, rounded
                if mode == "I":
                    notes.append("32-bit grey written as 8-bit")
                else:
                    out_mode, grey16 = "I;16", arr.astype(np.uint16)
                    notes.append("16-bit grey: changed pixels written at 8-bit precision")
            else:
                if mode == "1":
                    notes.append("1-bit image written as 8-bit grey")
                la = upright.convert("LA") if (mode in ("LA", "La") or transparent) else None
                grey = np.asarray(upright.convert("L"), dtype=np.uint8)
                if la is not None:
                    alpha = np.asarray(la, dtype=np.uint8)[..., 1].copy()
            rgb = np.repeat(grey[..., None], 3, axis=2)
        else:
            out_mode = "RGB"
            has_alpha = mode in ("RGBA", "RGBa", "PA", "LA") or transparent \
                or (mode == "P" and upright.palette is not None and upright.palette.mode == "RGBA")
            if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                notes.append(f"{mode} converted to RGB (no colour management)")
                params.pop("icc_profile", None)
            elif mode in ("P", "PA"):
                notes.append("palette image written as " + ("RGBA" if has_alpha else "RGB")
                             + (" (GIF: re-quantised to 256 colours)" if out_fmt == "GIF" else ""))
            if has_alpha:
                rgba = np.asarray(upright.convert("RGBA"), dtype=np.uint8)
                rgb, alpha = rgba[..., :3].copy(), rgba[..., 3].copy()
            else:
                rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8).copy()
        if alpha is not None and out_fmt in ("JPEG", "BMP", "DIB", "PPM", "PCX"):
            alpha = None  # the format has no alpha channel: nothing to carry
        return DecodedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, out_mode=out_mode,
                            format=out_fmt, input_mode=mode, save_params=params, notes=notes,
                            grey16=grey16)


def _guarded(fp, max_pixels: int, metadata: str) -> DecodedImage:
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise ValueError(f"max_pixels must be an integer >= 1, got {max_pixels!r}")
    try:
        return _decode(fp, max_pixels, metadata)
    except ImageFileError:
        raise
    except MemoryError:
        raise ImageFileError("not enough memory to decode the image") from None
    except Exception as exc:  # Pillow's decoders: OSError, SyntaxError, struct.error, EOFError...
        msg = _one_line(exc)
        if "truncated" in msg:
            raise ImageFileError(f"truncated image file ({msg})") from None
        raise ImageFileError(f"corrupt image data ({type(exc).__name__}: {msg})") from None


def decode_file(path, max_pixels: int = MAX_PIXELS, metadata: str = "safe") -> DecodedImage:
    """Decode the image file at ``path``; raises ImageFileError naming the problem (and
    OSError only when the file cannot be opened for reading at all). metadata: the EXIF
    policy for the output, "safe" (default), "keep" or "none" (module docstring)."""
    check_metadata_policy(metadata)
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise ImageFileError("empty file (0 bytes)")
        return _guarded(fh, max_pixels, metadata)


def decode_bytes(data: bytes, max_pixels: int = MAX_PIXELS, metadata: str = "safe") -> DecodedImage:
    """Decode an image from bytes; raises ImageFileError naming the problem. metadata: as
    for decode_file."""
    check_metadata_policy(metadata)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageFileError("empty file (0 bytes)")
    return _guarded(io.BytesIO(bytes(data)), max_pixels, metadata)


def encode(decoded: DecodedImage, rgb: np.ndarray) -> bytes:
    """The output file's bytes: ``rgb`` (H, W, 3) uint8, same size as ``decoded.rgb``,
    written in ``decoded``'s format, mode, alpha and metadata (see the module docstring).
    Raises ImageFileError when Pillow cannot write it."""
    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.shape != decoded.rgb.shape or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 {decoded.rgb.shape} like the decoded image, "
                         f"got {rgb.dtype} {rgb.shape}")
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if decoded.out_mode == "I;16":
        # unchanged pixels keep their 16 bits; changed ones: 8-bit luma scaled by 257
        changed = (rgb != decoded.rgb).any(axis=2)
        out16 = decoded.grey16.copy()
        out16[changed] = np.asarray(img.convert("L"), dtype=np.uint16)[changed] * 257
        img = Image.fromarray(out16)  # uint16 (H, W) -> mode I;16
    elif decoded.out_mode == "L":
        # ITU-R 601 luma with weights summing to 1: grey R = G = B comes back exactly
        img = img.convert("L")
    if decoded.alpha is not None:
        img.putalpha(Image.fromarray(decoded.alpha, "L"))
    buf = io.BytesIO()
    try:
        img.save(buf, format=decoded.format, **decoded.save_params)
    except Exception as exc:  # noqa: BLE001 - any writer failure is this file's failure
        raise ImageFileError(f"cannot write {img.mode} as {decoded.format}: {_one_line(exc)}") from None
    return buf.getvalue()
