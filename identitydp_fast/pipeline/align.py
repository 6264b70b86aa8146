"""Align (pipeline stage 3): 5 landmarks -> the model's crop and dlib's identity chip.

Every transform here is a (N, 2, 3) float64 tensor M mapping CROP pixel coordinates to
IMAGE pixel coordinates, ``[x_img, y_img] = M @ [c, r, 1]`` (x = column, y = row, pixel
centres at integers): exactly what ``reference.warp_affine`` takes to cut the crop out,
and what ``reference.warp_affine.paste_back`` takes to put it back.

Landmarks follow dlib's ``shape_predictor_5`` order (x, y): 0 and 1 are the outer and inner
corner of the eye on the image's right, 2 and 3 the outer and inner corner of the eye on
the image's left, 4 the base of the nose.

Two crops:

* the model crop (``crop_transform``, side S, 128 by default, any S): the generator needs
  context (hair, chin, some background), so the face is smaller than in dlib's chip. The
  template is dlib's 5-point mean face (outer eye corners 0.739 apart) scaled by
  TEMPLATE_SCALE = 0.46 of the crop side (outer eye corners 34% of the width apart) and
  moved so that the midpoint of the four eye corners sits at (0.5, EYES_Y = 0.40) of the
  crop. Checked on aligned LFW crops (a grid of 16, looked at): cheek to cheek ~55-60% of
  the width, chin at ~0.83 of the height, the top of the head at or just inside the top
  edge, background on both sides. Points are fractions f of the crop edge placed at pixel
  coordinate f S - 1/2, so S = 128 and S = 256 show the same content.
* dlib's identity chip (``dlib_chip_transform``): what ``dlib.get_face_chip(img, shape,
  size, padding)`` extracts, reproduced exactly (see that function).

The pyramid (what the chip reads for small chips): dlib's ``pyramid_down<2>``
(dlib/image_transforms/image_pyramid.h, pyramid_down_2_1), reproduced bit for bit
(``pyramid_down2``), and its point mapping (``point_down``).

One level halves the image with a separable 5-tap binomial filter [1 4 6 4 1] (x) [1 4 6 4 1]
in integer arithmetic, keeping every other row and column and dropping a 2-pixel border:

    out[i, j] = floor( sum_{a,b in -2..2} w_a w_b in[2 + 2 i + a, 2 + 2 j + b] / 256 )

with out of size ((H - 3) // 2, (W - 3) // 2) (empty when H <= 8 or W <= 8, as dlib).
Rows are filtered first (an exact integer sum, so the order does not matter); the single
division by 256 truncates. dlib maps a point p of the input to ``point_down(p) =
p / 2 - (1.25, 0.75)`` (x, y) in the output (``pyramid_down(2).point_down``): that is the
convention its chip extraction uses for the coordinates of a pyramid level, whatever the
filter's true phase. Checked against ``dlib.pyramid_down(2)(img)`` on RGB images of odd and
even sizes (tests/test_align.py).
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.dlib_resnet import CHIP_SIZE  # noqa: F401  (the chip side: with CHIP_PADDING below)

# dlib's mean face for shape_predictor_5 (dlib/image_transforms/interpolation.h,
# get_face_chip_details), in the unit square of its 68-point face; order as above.
DLIB_MEAN_FACE_5 = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)

TEMPLATE_SCALE = 0.46  # mean-face units per crop side (outer eye corners 0.34 S apart)
EYES_Y = 0.40          # height of the eye-corner midpoint, as a fraction of the crop height
PRIOR_EYES_Y = 0.48    # the same on the face prior's canvas (the prior-256 model)
# the face in mean-face units around the eye midpoint, measured on aligned LFW crops:
# forehead (hairline) ~0.33 above, chin ~0.95 below, cheeks ~0.62 to each side
_FACE_CENTRE_DY, _FACE_RX, _FACE_RY = 0.31, 0.62, 0.66
DEFAULT_CROP = 128
CHIP_PADDING = 0.25  # dlib's identity chip: CHIP_SIZE (150, the ResNet's input) + this padding


# ---- dlib's image pyramid (the chip reads a pyramid level for small chips) ------------
POINT_DOWN_OFFSET = (1.25, 0.75)  # (x, y): point_down(p) = p / 2 - offset


def pyramid_down2(image) -> torch.Tensor:
    """One level of dlib's pyramid_down<2>: (H, W, C) or (H, W) uint8 -> uint8 tensor of
    ((H - 3) // 2, (W - 3) // 2[, C]); empty (0, 0[, C]) when H <= 8 or W <= 8."""
    img = torch.as_tensor(image)
    if img.dim() not in (2, 3) or img.dtype != torch.uint8:
        raise ValueError(f"image must be (H, W[, C]) uint8, got {tuple(img.shape)} {img.dtype}")
    h, w = int(img.shape[0]), int(img.shape[1])
    if h <= 8 or w <= 8:
        return img.new_zeros((0, 0) + tuple(img.shape[2:]))
    oh, ow = (h - 3) // 2, (w - 3) // 2
    a = img.to(torch.int32)
    # columns 2 + 2 j + {-2..2}, j < ow
    t = (a[:, 0:2 * ow:2] + 4 * a[:, 1:2 * ow + 1:2] + 6 * a[:, 2:2 * ow + 2:2]
         + 4 * a[:, 3:2 * ow + 3:2] + a[:, 4:2 * ow + 4:2])
    d = (t[0:2 * oh:2] + 4 * t[1:2 * oh + 1:2] + 6 * t[2:2 * oh + 2:2]
         + 4 * t[3:2 * oh + 3:2] + t[4:2 * oh + 4:2])
    return torch.div(d, 256, rounding_mode="floor").to(torch.uint8).contiguous()


def point_down(points: torch.Tensor, levels: int = 1) -> torch.Tensor:
    """(..., 2) float (x, y) points of an image -> their place ``levels`` levels down."""
    p = torch.as_tensor(points, dtype=torch.float64)
    off = torch.tensor(POINT_DOWN_OFFSET, dtype=p.dtype, device=p.device)
    for _ in range(levels):
        p = p / 2 - off
    return p


def _as_points(name: str, pts, k: int | None = None) -> torch.Tensor:
    if isinstance(pts, torch.Tensor):
        t = pts.detach().to(device="cpu", dtype=torch.float64)
    else:
        t = torch.from_numpy(np.array(pts, dtype=np.float64))  # a copy: read-only arrays welcome
    if t.dim() not in (2, 3) or t.shape[-1] != 2 or (k is not None and t.shape[-2] != k):
        want = f"(K, 2) or (N, K, 2) with K={k}" if k else "(K, 2) or (N, K, 2)"
        raise ValueError(f"{name} must be {want}, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds non-finite coordinates; drop those faces first")
    return t


def similarity_transform(src, dst) -> torch.Tensor:
    """Least-squares similarity T (rotation, uniform scale, translation; no reflection)
    with T(src) ~ dst: argmin sum_k || s R src_k + t - dst_k ||^2 (Umeyama 1991).

    In 2-D the rotation-and-scale s R is the complex number z = s e^{i theta}, and the
    problem is complex linear least squares: with centred points p_k = src_k - mean(src),
    q_k = dst_k - mean(dst) (as complex numbers), z = sum conj(p_k) q_k / sum |p_k|^2 and
    t = mean(dst) - z mean(src). That is Umeyama's solution (s >= 0, det R = +1) in closed
    form, batched, without an SVD.

    src, dst: (N, K, 2) or (K, 2) (broadcast against each other), K >= 2. Returns
    (N, 2, 3) float64 [[a, -b, tx], [b, a, ty]] with z = a + ib.
    """
    s = _as_points("src", src)
    d = _as_points("dst", dst)
    if s.shape[-2] != d.shape[-2] or s.shape[-2] < 2:
        raise ValueError(f"src and dst need the same number K >= 2 of points, got "
                         f"{tuple(s.shape)} and {tuple(d.shape)}")
    s3 = s if s.dim() == 3 else s.unsqueeze(0)
    d3 = d if d.dim() == 3 else d.unsqueeze(0)
    s3, d3 = torch.broadcast_tensors(s3, d3)
    ms, md = s3.mean(dim=1, keepdim=True), d3.mean(dim=1, keepdim=True)
    p, q = s3 - ms, d3 - md                                   # (N, K, 2)
    spread = (p * p).sum(dim=(1, 2))                          # sum |p_k|^2, (N,)
    if bool((spread <= 1e-12 * (1 + ms.abs().amax(dim=(1, 2)) ** 2)).any()):
        raise ValueError("src points coincide (zero spread): a similarity is undefined; "
                         "check the landmarks")
    a = (p[..., 0] * q[..., 0] + p[..., 1] * q[..., 1]).sum(dim=1) / spread   # Re z
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(dim=1) / spread   # Im z
    lin = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)  # (N, 2, 2)
    t = md.squeeze(1) - (lin @ ms.squeeze(1).unsqueeze(-1)).squeeze(-1)
    return torch.cat([lin, t.unsqueeze(-1)], dim=-1)


def invert_affine(matrices) -> torch.Tensor:
    """[A | t]^-1 = [A^-1 | -A^-1 t] for (N, 2, 3) (or (2, 3)) affine maps; float64."""
    m = torch.as_tensor(matrices, dtype=torch.float64)
    squeeze = m.dim() == 2
    m = m.unsqueeze(0) if squeeze else m
    if m.dim() != 3 or m.shape[1:] != (2, 3):
        raise ValueError(f"matrices must be (N, 2, 3) or (2, 3), got {tuple(m.shape)}")
    a = m[:, :, :2]
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    bad = ~torch.isfinite(det) | (det.abs() < 1e-12)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"matrices[{i}] is not invertible (det of its 2x2 part = {float(det[i]):g})")
    ai = torch.linalg.inv(a)
    out = torch.cat([ai, -(ai @ m[:, :, 2:])], dim=-1)
    return out[0] if squeeze else out


def apply_affine(matrices, points) -> torch.Tensor:
    """M @ [x, y, 1] for (N, 2, 3) maps and (N, K, 2) points -> (N, K, 2) float64."""
    m = torch.as_tensor(matrices, dtype=torch.float64)
    p = torch.as_tensor(points, dtype=torch.float64)
    return p @ m[..., :2].transpose(-1, -2) + m[..., 2].unsqueeze(-2)


def _check_size(name: str, size) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise ValueError(f"{name} must be an integer >= 8 (pixels), got {size!r}")
    return size


def _check_eyes_y(eyes_y) -> float:
    if isinstance(eyes_y, bool) or not isinstance(eyes_y, (int, float)) or not 0.2 <= eyes_y <= 0.6:
        raise ValueError(f"eyes_y must be a number in [0.2, 0.6] (fraction of the crop height), got {eyes_y!r}")
    return float(eyes_y)


def crop_template(size: int = DEFAULT_CROP, eyes_y: float = EYES_Y) -> torch.Tensor:
    """(5, 2) float64 target landmarks of the model crop of side ``size``, in pixels.

    template = ((mean_face - eye_mid) TEMPLATE_SCALE + (1/2, eyes_y)) size - 1/2, eye_mid =
    mean of the four eye corners of dlib's mean face (module docstring). ``eyes_y``: EYES_Y
    for the AEI-Net models; the prior-256 model draws on the face prior's FFHQ-aligned canvas,
    the same scale with the eyes lower (PRIOR_EYES_Y, measured with dlib's 5 points on the
    prior's own samples).
    """
    size = _check_size("size", size)
    eyes_y = _check_eyes_y(eyes_y)
    face = torch.tensor(DLIB_MEAN_FACE_5, dtype=torch.float64)
    eye_mid = face[:4].mean(dim=0)
    frac = (face - eye_mid) * TEMPLATE_SCALE + torch.tensor([0.5, eyes_y], dtype=torch.float64)
    return frac * size - 0.5


def crop_transform(landmarks, size: int = DEFAULT_CROP, eyes_y: float = EYES_Y) -> torch.Tensor:
    """(N, 2, 3) crop -> image maps for the model crop: the least-squares similarity from
    ``crop_template(size, eyes_y)`` to the (N, 5, 2) landmarks (error measured in image
    pixels, like dlib's chips)."""
    lm = _as_points("landmarks", landmarks, 5)
    return similarity_transform(crop_template(size, eyes_y), lm if lm.dim() == 3 else lm.unsqueeze(0))


def crop_face_ellipse(size: int = DEFAULT_CROP, eyes_y: float = EYES_Y, scale: float = 1.0
                      ) -> tuple[tuple[float, float], tuple[float, float]]:
    """((cx, cy), (rx, ry)) in pixels: an ellipse over the face in the model crop, hairline
    to chin and cheek to cheek (a mask for blending and for degrading the inner face);
    ``scale`` > 1 widens both radii (a model whose faces cover the outline too)."""
    size = _check_size("size", size)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.5 <= scale <= 2.0:
        raise ValueError(f"scale must be a number in [0.5, 2], got {scale!r}")
    cx = 0.5 * size - 0.5
    cy = (_check_eyes_y(eyes_y) + _FACE_CENTRE_DY * TEMPLATE_SCALE) * size - 0.5
    return (cx, cy), (scale * _FACE_RX * TEMPLATE_SCALE * size, scale * _FACE_RY * TEMPLATE_SCALE * size)


def dlib_chip_transform(landmarks, size: int = 150, padding: float = 0.25) -> torch.Tensor:
    """(N, 2, 3) chip -> image maps of ``dlib.get_face_chip(img, shape, size, padding)``.

    dlib (get_face_chip_details, chip_details, extract_image_chips), reproduced:

    1. chip points P_k = (padding + mean_face_k) / (1 + 2 padding) * size;
    2. similarity T = s R(theta) x + t fitted from P to the landmarks (least squares);
    3. the chip's rectangle: centre c = T(size/2, size/2), side size * s (dlib's
       ``centered_drect``: its corners sit (size s - 1)/2 from the centre);
    4. chip pixels (0, 0) and (size-1, size-1) map to those rotated corners, so
       x_img = c + R(theta) k (x_chip - (size - 1)/2) with k = (size s - 1)/(size - 1).

    The last step is not T itself (T has scale s and centres size/2 at c); it differs from
    T by up to ~1 pixel at the chip's edge and by ~2 grey levels per pixel. With this
    transform, float64 coordinates and ``warp_affine(..., truncate=True)`` the chip equals
    dlib's bit for bit while dlib samples the image directly. For large faces (chip
    rectangle wider than ~2 (size - 1) pixels) dlib first downsamples the image with its
    pyramid_down<2>; ``dlib_chip_source`` gives the crop, the number of levels and this
    map in the level's coordinates, and ``dlib_face_chips`` applies them (bit for bit too).

    landmarks: (N, 5, 2) or (5, 2) in shape_predictor_5 order. Returns (N, 2, 3) float64.
    """
    size = _check_size("size", size)
    if not (padding >= 0.0):
        raise ValueError(f"padding must be >= 0 (dlib's convention), got {padding!r}")
    lm = _as_points("landmarks", landmarks, 5)
    lm = lm if lm.dim() == 3 else lm.unsqueeze(0)
    face = torch.tensor(DLIB_MEAN_FACE_5, dtype=torch.float64)
    chip_pts = (padding + face) / (2 * padding + 1) * size
    t = similarity_transform(chip_pts, lm)                     # (N, 2, 3), chip -> image
    s = torch.hypot(t[:, 0, 0], t[:, 1, 0])                    # scale, (N,)
    centre = apply_affine(t, torch.full((t.shape[0], 1, 2), size / 2, dtype=torch.float64))[:, 0]
    rot = t[:, :, :2] / s.view(-1, 1, 1)                       # R(theta)
    k = (size * s - 1) / (size - 1)
    lin = rot * k.view(-1, 1, 1)
    half = torch.full((t.shape[0], 2, 1), (size - 1) / 2, dtype=torch.float64)
    trans = centre.unsqueeze(-1) - lin @ half
    return torch.cat([lin, trans], dim=-1)


def dlib_chip_needs_pyramid(matrices, size: int = 150) -> torch.Tensor:
    """(N,) bool: dlib would sample this chip from a downsampled pyramid level
    (``dlib_chip_pyramid_levels(...) > 0``)."""
    return dlib_chip_pyramid_levels(matrices, size) > 0


def dlib_chip_pyramid_levels(matrices, size: int = 150) -> torch.Tensor:
    """(N,) int64: how many pyramid_down<2> levels dlib's extract_image_chips goes down.

    With the chip's rectangle of side w = r - l (= k (size - 1), k the scale of the
    chip -> image map), one level maps it to side w / 2 (``point_down``: p / 2 - (1.25,
    0.75)), and dlib's drectangle area is (w + 1)^2. dlib goes down one more level while
    the NEXT level's rectangle still holds more pixels than the chip: L = the number of
    j >= 1 with (w / 2^j + 1)^2 > size^2, i.e. w > 2 (size - 1) for one level (faces
    whose chip rectangle is wider than ~298 pixels at size 150), w > 4 (size - 1) for two.
    """
    m = torch.as_tensor(matrices, dtype=torch.float64)
    w = torch.hypot(m[..., 0, 0], m[..., 1, 0]) * (size - 1)
    levels = torch.zeros(w.shape, dtype=torch.int64)
    side = w.clone()
    for _ in range(64):
        side = side / 2
        more = (side + 1) ** 2 > size * size
        if not bool(more.any()):
            break
        levels += more.to(torch.int64)
        side = torch.where(more, side, torch.zeros_like(side))
    return levels


def dlib_chip_source(matrix, image_hw, size: int = 150) -> tuple[int, tuple[int, int, int, int], torch.Tensor]:
    """Where dlib's extract_image_chips samples one chip: (levels, box, level_matrix).

    matrix: (2, 3) chip -> image map (``dlib_chip_transform``); image_hw: (H, W).
    dlib crops the image to ``box`` = (left, top, right, bottom), inclusive integer pixels:
    the bounding box of the chip's rotated rectangle grown by g pixels (g = 2, then
    g -> 2 g + 2 per pyramid level: 6, 14, ...), intersected with the image, its edges
    rounded to the nearest integer (drectangle -> rectangle); it downsamples that crop
    ``levels`` times with pyramid_down<2> and samples the chip bilinearly from the last
    level, whose coordinates are q = point_down^levels(p - (left, top)) with point_down(p)
    = p / 2 - (1.25, 0.75). level_matrix is that chip -> level map (2, 3) float64.
    """
    m = torch.as_tensor(matrix, dtype=torch.float64).reshape(2, 3).cpu()
    h, w = int(image_hw[0]), int(image_hw[1])
    levels = int(dlib_chip_pyramid_levels(m.unsqueeze(0), size)[0])
    half = (size - 1) / 2
    cx = float(m[0, 0] * half + m[0, 1] * half + m[0, 2])
    cy = float(m[1, 0] * half + m[1, 1] * half + m[1, 2])
    hw = float(torch.hypot(m[0, 0], m[1, 0])) * (size - 1) / 2
    ang = float(torch.atan2(m[1, 0], m[0, 0]))
    ca, sa = np.cos(ang), np.sin(ang)
    xs, ys = [], []
    for dx in (-hw, hw):
        for dy in (-hw, hw):
            xs.append(ca * dx - sa * dy + cx)
            ys.append(sa * dx + ca * dy + cy)
    grow = 2.0
    for _ in range(levels):
        grow = grow * 2 + 2
    box_d = (max(min(xs) - grow, 0.0), max(min(ys) - grow, 0.0),
             min(max(xs) + grow, w - 1.0), min(max(ys) + grow, h - 1.0))
    box = tuple(int(np.floor(v + 0.5)) for v in box_d)
    lm = m.clone()
    lm[:, 2] -= torch.tensor([box[0], box[1]], dtype=torch.float64)
    off = torch.tensor(POINT_DOWN_OFFSET, dtype=torch.float64)
    for _ in range(levels):
        lm = lm / 2
        lm[:, 2] -= off
    return levels, box, lm


def dlib_face_chips(image, landmarks, size: int = 150, padding: float = 0.25) -> torch.Tensor:
    """(N, size, size, 3) uint8 identity chips in dlib's convention (``dlib.get_face_chip``).

    image: (H, W, 3) uint8 (tensor or numpy); landmarks: (N, 5, 2). Each face is cut as
    dlib.get_face_chip cuts it (``dlib_chip_source``): from the image cropped to the chip's
    grown bounding box, downsampled with dlib's pyramid_down<2> as many times as dlib does
    (faces whose chip rectangle is wider than ~2 size pixels), bilinear in float64 and
    truncated; a chip pixel any of whose four taps falls outside the (cropped, downsampled)
    source reads 0, as in dlib's interpolate_bilinear. Bit-identical to dlib on the tested
    faces, large ones included (tests/test_align.py).
    """
    from ..reference.warp_affine import warp_affine

    img = torch.as_tensor(image)
    if img.dim() != 3 or img.shape[2] != 3 or img.dtype != torch.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 (see pipeline.decode.to_rgb_uint8), got "
                         f"{tuple(img.shape)} {img.dtype}")
    m = dlib_chip_transform(landmarks, size, padding)
    h, w = int(img.shape[0]), int(img.shape[1])
    out = torch.zeros((m.shape[0], size, size, 3), dtype=torch.uint8, device=img.device)
    grid = torch.arange(size, dtype=torch.float64)
    for i in range(m.shape[0]):
        levels, (l, t, r, b), lm = dlib_chip_source(m[i], (h, w), size)
        if r < l or b < t:                       # the chip lies entirely outside the image
            continue
        src = img[t:b + 1, l:r + 1]
        for _ in range(levels):
            src = pyramid_down2(src)
        sh, sw = int(src.shape[0]), int(src.shape[1])
        if sh < 2 or sw < 2:
            continue
        chip = warp_affine(src.unsqueeze(0), lm.unsqueeze(0).to(img.device), size, size,
                           truncate=True)[0]
        # dlib's interpolate_bilinear: 0 unless all four taps are inside the source (the
        # same float64 arithmetic as warp_affine, so the same floors)
        x = lm[0, 0] * grid.view(1, -1) + lm[0, 1] * grid.view(-1, 1) + lm[0, 2]
        y = lm[1, 0] * grid.view(1, -1) + lm[1, 1] * grid.view(-1, 1) + lm[1, 2]
        x0, y0 = torch.floor(x), torch.floor(y)
        ok = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < sw) & (y0 + 1 < sh)
        chip = chip * ok.to(device=chip.device, dtype=chip.dtype)
        out[i] = chip.clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return out


def model_crops(rgb: np.ndarray, landmarks, size: int, backend: str, eyes_y: float = EYES_Y):
    """Model crops (N, 3, S, S) float32 in [-1, 1] (CPU; pixels outside the image read
    black) and their (N, 2, 3) float64 crop -> image maps, from (H, W, 3) uint8 ``rgb`` and
    (N, 5, 2) landmarks; the warp kernel of identitydp_fast/ops on ``backend``."""
    from ..ops.warp_affine import warp_affine

    mats = crop_transform(landmarks, size, eyes_y)                    # (N, 2, 3)
    img = torch.from_numpy(rgb).unsqueeze(0)                          # (1, H, W, 3) uint8
    # one warp per face: the image is shared, and the kernels want one image per matrix
    crops = torch.cat([warp_affine(img, mats[i:i + 1], size, size, mean=(127.5, 127.5, 127.5),
                                   scale=1.0 / 127.5, backend=backend)
                       for i in range(mats.shape[0])])
    return crops, mats
