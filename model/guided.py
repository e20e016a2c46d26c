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


class GuidedFilter:
    """The guide's share of the guided filter, computed once: window means and the inverse of the regularised
    3x3 colour covariance. Filtering many maps with one guide (every pointer of `segment_image` runs on the same
    image) then costs only the box filters of the map, about a third of a fresh filter."""

    def __init__(self, guide: np.ndarray, radius: int, eps: float) -> None:
        if radius < 1:
            raise ValueError("radius must be >= 1")
        I = guide.astype(np.float32)
        if guide.dtype == np.uint8:
            I /= 255.0
        if I.ndim != 3 or I.shape[2] != 3:
            raise ValueError(f"guide must be HxWx3, got {I.shape}")
        self.radius, self.eps, self.shape = radius, eps, I.shape[:2]
        self.I = I
        self.mean_I = _box(I, radius)                          # HxWx3
        # The 3x3 covariance of the guide in each window, plus eps on the diagonal.
        idx = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
        prods = np.stack([I[..., i] * I[..., j] for i, j in idx], -1)
        var = _box(prods, radius) - np.stack([self.mean_I[..., i] * self.mean_I[..., j] for i, j in idx], -1)
        rr, rg, rb, gg, gb, bb = (var[..., k] for k in range(6))
        rr = rr + eps
        gg = gg + eps
        bb = bb + eps
        # Inverse of the symmetric 3x3 matrix by cofactors, per pixel, divided by the determinant once here.
        inv = np.stack([gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb,
                        rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg], -1)
        det = rr * inv[..., 0] + rg * inv[..., 1] + rb * inv[..., 2]
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        self.inv = inv / det[..., None]                        # i_rr, i_rg, i_rb, i_gg, i_gb, i_bb

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """`p` (HxW, the guide's size) filtered."""
        p = p.astype(np.float32)
        if p.shape != self.shape:
            raise ValueError(f"map must be {self.shape[0]}x{self.shape[1]}, got {p.shape}")
        r, I, mean_I = self.radius, self.I, self.mean_I
        mean_p = _box(p, r)
        cov_Ip = _box(I * p[..., None], r) - mean_I * mean_p[..., None]
        c0, c1, c2 = cov_Ip[..., 0], cov_Ip[..., 1], cov_Ip[..., 2]
        i_rr, i_rg, i_rb, i_gg, i_gb, i_bb = (self.inv[..., k] for k in range(6))
        a = np.stack([i_rr * c0 + i_rg * c1 + i_rb * c2,
                      i_rg * c0 + i_gg * c1 + i_gb * c2,
                      i_rb * c0 + i_gb * c1 + i_bb * c2], -1)
        b = mean_p - (a * mean_I).sum(-1)
        return (_box(a, r) * I).sum(-1) + _box(b, r)


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """`p` (HxW float) filtered with the colour image `guide` (HxWx3 uint8 or float in [0, 1]) as the guide.
    `radius` in pixels of `p`, `eps` the regulariser in (intensity / 255)^2: larger smooths more."""
    if radius < 1:
        return p.astype(np.float32, copy=True)
    h, w = p.shape
    if guide.shape[:2] != (h, w) or guide.ndim != 3 or guide.shape[2] != 3:
        raise ValueError(f"guide must be {h}x{w}x3, got {guide.shape}")
    return GuidedFilter(guide, radius, eps)(p)
