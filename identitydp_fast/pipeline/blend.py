"""Blend (pipeline stage 8): frame' = frame (1 - m) + crop m, for every face: generated
crops back into the frame.

``paste_mask(S)``: the mask m, the feathered face ellipse of the crop
(``align.crop_face_ellipse``, feather ``PASTE_FEATHER``), so no seam or box edge shows.

``paste_faces(frame, crops, matrices, mask, backend)``: for face i the crop (S, S, 3) and
the mask (S, S), both in crop coordinates, are inverse-warped (bilinear) into the frame's
bounding box of the crop's footprint and blended there. Faces are pasted in order (where
two overlap, the later one blends over the earlier). The math is
``reference.warp_affine.paste_back``'s, which runs as is for ``backend="reference"`` (the
oracle, float64); the other backends warp with their kernel (identitydp_fast/ops/warp_affine.py,
float32 samples) and blend in float64. ``blend_crops`` is the same blend for callers'
own aligned crops (no warp). Tests: tests/test_anonymizer.py.

Guarantees: a frame pixel where every face's warped mask is exactly 0 (outside the
feathered ellipses; the mask reads 0 outside the crop) comes back bit-identical; crops that
reach past the frame (faces cut by the border) are pasted where they overlap it, and a crop
entirely outside leaves the frame unchanged; values round half up.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..ops.warp_affine import warp_affine
from ..reference.warp_affine import feathered_ellipse, paste_back
from .align import EYES_Y, apply_affine, crop_face_ellipse, invert_affine, similarity_transform
from .attributes import gaussian_blur
from .detect import detect_faces

#: feather of the paste-back ellipse, as a fraction of its radius; the same value as
#: evaluation.harness.MASK_FEATHER, whose "outside the face" is what this leaves untouched
PASTE_FEATHER = 0.15


def paste_mask(size: int, eyes_y: float = EYES_Y, scale: float = 1.0) -> torch.Tensor:
    """(S, S) float64 paste-back mask in crop pixels: 1 on the face, 0 outside the feathered
    face ellipse (of the crop template with its eyes at ``eyes_y``, radii times ``scale``)."""
    (cx, cy), (rx, ry) = crop_face_ellipse(size, eyes_y, scale)
    return feathered_ellipse(size, size, (cx, cy), (rx, ry), PASTE_FEATHER, dtype=torch.float64)


def footprint(matrix: torch.Tensor, size: int, height: int, width: int):
    """(x0, y0, x1, y1) inclusive frame pixels covered by the (size x size) crop whose
    crop -> frame map is ``matrix`` (2, 3), clipped to the frame; None when it misses it."""
    corners = torch.tensor([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1],
                            [size - 0.5, size - 0.5, 1]], dtype=torch.float64)
    pts = corners @ matrix.to(torch.float64).T
    x0 = max(0, math.floor(float(pts[:, 0].min())))
    y0 = max(0, math.floor(float(pts[:, 1].min())))
    x1 = min(width - 1, math.ceil(float(pts[:, 0].max())))
    y1 = min(height - 1, math.ceil(float(pts[:, 1].max())))
    if x1 < x0 or y1 < y0:
        return None
    return x0, y0, x1, y1


def paste_faces(frame: np.ndarray, crops: torch.Tensor, matrices: torch.Tensor,
                mask: torch.Tensor, backend: str) -> np.ndarray:
    """Blend generated crops into a copy of ``frame``.

    frame: (H, W, 3) uint8 numpy; crops: (N, S, S, 3) float in pixel units [0, 255] (CPU);
    matrices: (N, 2, 3) float64 crop -> frame maps (the ones that cut the crops); mask:
    (S, S) float in [0, 1]; backend: 'reference' or a warp kernel backend for CPU tensors.
    Returns a new (H, W, 3) uint8 numpy array.
    """
    out = torch.from_numpy(np.array(frame, copy=True))    # (H, W, 3) uint8
    n, s = int(crops.shape[0]), int(crops.shape[1])
    h, w = int(out.shape[0]), int(out.shape[1])
    m64 = matrices.to(torch.float64).cpu()
    if backend == "reference":
        mk = mask.to(torch.float64).cpu()
        for i in range(n):
            out = paste_back(out, crops[i].to(torch.float64).cpu(), m64[i], mk)
        return out.numpy()
    both = torch.cat([crops.to(torch.float32).cpu(),
                      mask.to(torch.float32).cpu().expand(n, s, s).unsqueeze(-1)], dim=-1)  # (N, S, S, 4)
    for i in range(n):
        box = footprint(m64[i], s, h, w)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        # frame -> crop, shifted so that output pixel (0, 0) is frame pixel (x0, y0)
        inv = invert_affine(m64[i])
        inv[:, 2] += inv[:, :2] @ torch.tensor([float(x0), float(y0)], dtype=torch.float64)
        rh, rw = y1 - y0 + 1, x1 - x0 + 1
        warped = warp_affine(both[i:i + 1].contiguous(), inv.unsqueeze(0), rh, rw,
                             backend=backend)[0].permute(1, 2, 0)          # (rh, rw, 4) float32
        alpha = warped[..., 3:].to(torch.float64).clamp(0, 1)
        region = out[y0:y1 + 1, x0:x1 + 1].to(torch.float64)
        blended = region * (1 - alpha) + warped[..., :3].to(torch.float64) * alpha
        out[y0:y1 + 1, x0:x1 + 1] = torch.floor(blended + 0.5).clamp(0, 255).to(torch.uint8)
    return out.numpy()


def blend_crops(crops: np.ndarray, pixels: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    """crops (N, S, S, 3) uint8 numpy (the caller's aligned crops) blended with generated
    ``pixels`` (N, S, S, 3) float in [0, 255] through ``mask`` (S, S): a new (N, S, S, 3)
    uint8 array; where the mask is 0 the crop comes back exactly (mask None: the generated
    pixels everywhere). Values round half up."""
    out = pixels.to(torch.float64)
    if mask is not None:
        s = int(mask.shape[-1])
        m = mask.to(torch.float64).view(1, s, s, 1)
        src = torch.from_numpy(crops).to(torch.float64)
        out = src * (1 - m) + out * m                                  # m = 0: src exactly
    return torch.floor(out + 0.5).clamp(0, 255).to(torch.uint8).numpy()


#: realign only within these bounds (a larger correction means the wrong face was found):
#: scale ratio, and shift in units of the outer-eye-corner distance
MAX_REALIGN_SCALE, MAX_REALIGN_SHIFT = 0.15, 0.25


def realign_rendered(pixels: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Generated crops resampled so that each face's own eyes and nose sit on the template.

    A generator that renders from a face prior (prior-256) draws the face near, not exactly
    at, the crop template. For face i: L = dlib's 5 points of the face dlib's HOG detector
    finds in the generated crop (the one nearest the template), A the least-squares
    similarity template -> L, and out(q) = crop(A q) (bilinear): the face moved onto the
    template, so the unchanged paste (the photo's crop map and the paste ellipse) puts it on
    the photo's landmarks and leaves every pixel outside the ellipse untouched. Faces where
    HOG finds nothing, or whose correction exceeds MAX_REALIGN_SCALE or MAX_REALIGN_SHIFT,
    are returned as they are. pixels: (N, S, S, 3) float in [0, 255]; template: (5, 2)
    crop pixels. Returns (N, S, S, 3) float32 CPU."""
    t = template.to(torch.float64)
    centre, iod = t[:4].mean(dim=0), float((t[0] - t[2]).norm())
    out = pixels.to(torch.float32).cpu().clone()
    s = int(out.shape[1])
    crops = torch.floor(out + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    for i in range(out.shape[0]):
        found = [torch.tensor(f.landmarks) for f in detect_faces(crops[i], "hog", 0)]  # a copy: read-only
        if not found:
            continue
        lm = min(found, key=lambda p: float((p[:4].mean(dim=0) - centre).norm()))
        fit = similarity_transform(t, lm.unsqueeze(0))                 # (1, 2, 3) template -> generated
        scale = float(torch.linalg.det(fit[0, :, :2]).abs().sqrt())
        shift = float((apply_affine(fit, centre.view(1, 1, 2))[0, 0] - centre).norm()) / iod
        if abs(scale - 1) > MAX_REALIGN_SCALE or shift > MAX_REALIGN_SHIFT:
            continue
        out[i] = warp_affine(out[i:i + 1].contiguous(), fit.to(torch.float32), s, s,
                             backend="reference")[0].permute(1, 2, 0)
    return out


def match_colour(pixels: torch.Tensor, crops: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Generated crops shifted per channel so that their mean over the face (where the paste
    mask is >= 1/2) equals the photo crop's there: the new face keeps the photo's skin tone
    and lighting level, so no seam shows where it is blended in (measured: the prior draws
    skin towards its average tone). pixels (N, S, S, 3) in [0, 255], crops (N, 3, S, S) in
    [-1, 1] (the photo's model crops), mask (S, S)."""
    face = (mask >= 0.5).to(torch.float32).view(1, *mask.shape, 1)
    photo = (crops.permute(0, 2, 3, 1).to(torch.float32) + 1) * 127.5
    offset = ((photo - pixels.to(torch.float32)) * face).sum(dim=(1, 2), keepdim=True) / face.sum()
    return (pixels.to(torch.float32) + offset).clamp(0, 255)


def antialias_for_paste(pixels: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Generated crops low-passed for the scale they are pasted at.

    The paste samples the crop bilinearly at frame pixels; a crop drawn at 256 for a face
    that covers k < 256 frame pixels is then decimated by 256 / k without a prefilter, which
    aliases its fine detail into false sharpness (measured: the prior's faces came out 1.4-1.6x
    as sharp as the photo's, above the 1.3 target). Face i is blurred by the Gaussian
    sigma = 0.5 sqrt(1 / a^2 - 1) crop pixels, a = sqrt|det M_i| the frame pixels per crop
    pixel (no blur when a >= 1). pixels (N, S, S, 3) float; matrices (N, 2, 3) crop -> frame."""
    out = pixels.to(torch.float32).clone()
    for i in range(out.shape[0]):
        a = float(torch.linalg.det(matrices[i, :, :2].to(torch.float64)).abs().sqrt())
        if a < 1:
            sigma = 0.5 * math.sqrt(1 / (a * a) - 1)
            out[i] = gaussian_blur(out[i:i + 1].permute(0, 3, 1, 2), sigma)[0].permute(1, 2, 0)
    return out


def fit_rendered(pixels: torch.Tensor, crops: torch.Tensor, matrices: torch.Tensor,
                 mask: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """What a prior-drawn face (prior-256) needs before the paste, in order: the photo's
    colour (``match_colour``), its own landmarks on the template (``realign_rendered``), a
    low-pass for the paste scale (``antialias_for_paste``)."""
    pixels = match_colour(pixels, crops, mask)
    return antialias_for_paste(realign_rendered(pixels, template), matrices)
