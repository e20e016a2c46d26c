"""Edge-aware smoothing of the net's probability map: the guided filter (He, Sun and Tang, ECCV 2010).

The net's logits come at half its internal resolution and are upsampled bilinearly, so its outlines are smooth
curves that cut across the image's edges. The colour guided filter makes the output, in every small window, an
affine function of the image's colours fitted to the probabilities: where the image has an edge inside the
window, the probability may jump there; where it is flat, the probability is smoothed. Cost: a handful of box
filters, a few milliseconds at the net's internal size.
"""
from __future__ import annotations

import cv2
import numpy as np


def _box(a: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(a, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """`p` (HxW float) filtered with the colour image `guide` (HxWx3 uint8 or float in [0, 1]) as the guide.
    `radius` in pixels of `p`, `eps` the regulariser in (intensity / 255)^2: larger smooths more."""
    if radius < 1:
        return p.astype(np.float32, copy=True)
    I = guide.astype(np.float32)
    if guide.dtype == np.uint8:
        I /= 255.0
    p = p.astype(np.float32)
    h, w = p.shape
    if I.shape[:2] != (h, w) or I.ndim != 3 or I.shape[2] != 3:
        raise ValueError(f"guide must be {h}x{w}x3, got {I.shape}")
    mean_I = _box(I, radius)                                   # HxWx3
    mean_p = _box(p, radius)                                   # HxW
    cov_Ip = _box(I * p[..., None], radius) - mean_I * mean_p[..., None]
    # The 3x3 covariance of the guide in each window, plus eps on the diagonal.
    idx = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    prods = np.stack([I[..., i] * I[..., j] for i, j in idx], -1)
    var = _box(prods, radius) - np.stack([mean_I[..., i] * mean_I[..., j] for i, j in idx], -1)
    rr, rg, rb, gg, gb, bb = (var[..., k] for k in range(6))
    rr = rr + eps
    gg = gg + eps
    bb = bb + eps
    # Inverse of the symmetric 3x3 matrix by cofactors, per pixel.
    i_rr = gg * bb - gb * gb
    i_rg = gb * rb - rg * bb
    i_rb = rg * gb - gg * rb
    i_gg = rr * bb - rb * rb
    i_gb = rb * rg - rr * gb
    i_bb = rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    c0, c1, c2 = cov_Ip[..., 0], cov_Ip[..., 1], cov_Ip[..., 2]
    a0 = (i_rr * c0 + i_rg * c1 + i_rb * c2) / det
    a1 = (i_rg * c0 + i_gg * c1 + i_gb * c2) / det
    a2 = (i_rb * c0 + i_gb * c1 + i_bb * c2) / det
    a = np.stack([a0, a1, a2], -1)
    b = mean_p - (a * mean_I).sum(-1)
    return (_box(a, radius) * I).sum(-1) + _box(b, radius)
