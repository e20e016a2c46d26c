"""Colours of segments ("colour by segment") and of the proposals in the overview. No Qt here.

A segment's colour depends only on its id and the colours to avoid (the project's category swatches and the
proposal fill), so it is the same on every redraw and after a reopen, and a "person" segment is never drawn in
the lime of the "car" swatch. Category default colours step hues by the golden ratio per category index, as the
segment colours step per id, so without avoiding them segment k was drawn in category k's hue.
"""
from __future__ import annotations

from typing import Iterable, Sequence, Tuple

import cv2
import numpy as np

RGB = Tuple[int, int, int]
PHI = 0.61803398875
# Lab distance (CIE76) a segment colour keeps from every colour to avoid: 35 is about the gap between two
# neighbouring hues of a 10-colour palette; below ~20 swatch and segment read as the same colour.
MIN_DISTANCE = 35.0
CANDIDATES = 24


def _lab(rgb: np.ndarray) -> np.ndarray:
    """N x 3 uint8 RGB -> N x 3 float CIE Lab."""
    return cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def _candidates(segment_id: int) -> np.ndarray:
    """CANDIDATES x 3 uint8 RGB: the id's own golden-angle hue first, then hues stepped away from it."""
    out = []
    for k in range(CANDIDATES):
        hue = (segment_id * PHI + k * 0.5 * PHI * PHI) % 1.0
        sat = 0.55 + 0.35 * (((segment_id + k) * 0.37) % 1.0)
        val = (235, 180)[(k // 12) % 2]
        out.append((int(hue * 179), int(sat * 255), val))
    hsv = np.array(out, np.uint8).reshape(-1, 1, 3)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(-1, 3)


def segment_color(segment_id: int, avoid: Iterable[Sequence[int]] = ()) -> RGB:
    """A stable colour for ``segment_id``: its first candidate at least MIN_DISTANCE (Lab) from every colour in
    ``avoid``, else the candidate farthest from them (many categories fill the colour space)."""
    cands = _candidates(int(segment_id))
    avoid = np.array([tuple(c)[:3] for c in avoid], np.uint8).reshape(-1, 3)
    if not len(avoid):
        return tuple(int(v) for v in cands[0])
    d = np.linalg.norm(_lab(cands)[:, None, :] - _lab(avoid)[None, :, :], axis=2).min(axis=1)
    ok = np.nonzero(d >= MIN_DISTANCE)[0]
    k = int(ok[0]) if len(ok) else int(np.argmax(d))
    return tuple(int(v) for v in cands[k])


def color_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """CIE76 Lab distance of two RGB colours."""
    la, lb = _lab(np.array([tuple(a)[:3], tuple(b)[:3]], np.uint8))
    return float(np.linalg.norm(la - lb))


def mask_key(mask: np.ndarray) -> int:
    """A key that stays with a mask wherever it sits in a list: the flat index of its first pixel (proposals
    of one image are disjoint, so their keys differ)."""
    flat = np.ascontiguousarray(mask, bool).reshape(-1)
    return int(np.argmax(flat)) if flat.any() else -1
