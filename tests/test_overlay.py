"""The label overlay drawn over the image: every pixel's colour as the user is told (fill in the segment's
colour, an opaque outline, white / dark hatch on unlabelled pixels, selected segments traced in white), checked
against a plain per-class reference on many random label maps, small and 24-bit COCO ids alike."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotator._qt.canvas import compose_overlay, label_edges


def reference_overlay(labels, colors, opacity, show_unlabelled=True, outlines=True, selected=()):
    """The overlay written out class by class (slow and plain)."""
    h, w = labels.shape
    alpha = int(round(np.clip(opacity, 0.0, 1.0) * 255))
    rgba = np.zeros((h, w, 4), np.uint8)
    for sid, col in colors.items():
        if sid > 0:
            rgba[labels == sid] = (*col, alpha)
    if show_unlabelled:
        yy, xx = np.mgrid[0:h, 0:w]
        stripe = ((xx + yy) % 8) < 2
        rgba[(labels == 0) & stripe] = (255, 255, 255, 80)
        rgba[(labels == 0) & ~stripe] = (0, 0, 0, 30)
    if outlines:
        edge = label_edges(labels)
        for sid, col in colors.items():
            if sid > 0:
                opaque = 255 if (any(col) or alpha > 0) else 0
                rgba[edge & (labels == sid)] = (*col, opaque)
    for sid in selected:
        if sid > 0:
            cs, _ = cv2.findContours((labels == sid).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(rgba, cs, -1, (255, 255, 255, 255), 2)
    return rgba


@pytest.mark.parametrize("big_ids", [False, True])
def test_overlay_matches_the_reference(big_ids):
    rng = np.random.default_rng(7)
    pool = np.array([0, 3, 70000, 16_000_000, 12] if big_ids else [0, 1, 2, 5, 9])
    for trial in range(25):
        h, w = (int(v) for v in rng.integers(4, 40, 2))
        labels = pool[rng.integers(0, len(pool), (h, w))].astype(np.int32)
        labels = np.kron(labels, np.ones((2, 2), np.int32))  # regions wider than a pixel, so outlines vary
        present = [int(i) for i in np.unique(labels) if i > 0]
        colors = {i: tuple(int(c) for c in rng.integers(0, 256, 3)) for i in present if rng.random() < 0.8}
        opacity = float(rng.uniform(0, 1))
        hatch, outlines = bool(rng.random() < 0.7), bool(rng.random() < 0.7)
        selected = present[:1] if rng.random() < 0.5 else []
        got = compose_overlay(labels, colors, opacity, hatch, outlines, selected)
        want = reference_overlay(labels, colors, opacity, hatch, outlines, selected)
        assert got.dtype == np.uint8 and got.flags.c_contiguous
        assert np.array_equal(got, want), trial


def test_proposal_is_filled_and_outlined():
    from annotator._qt.canvas import compose_proposal

    mask = np.zeros((40, 50), bool)
    mask[10:30, 12:40] = True
    rgba = compose_proposal(mask, fill=(1, 2, 3), edge=(9, 8, 7), alpha=120)
    assert rgba.shape == (40, 50, 4) and rgba.dtype == np.uint8 and rgba.flags.c_contiguous
    assert tuple(rgba[20, 25]) == (1, 2, 3, 120)          # inside
    assert tuple(rgba[10, 25]) == (9, 8, 7, 255)          # on the outline
    assert tuple(rgba[2, 2]) == (0, 0, 0, 0)              # outside: transparent
    assert (rgba[..., 3] > 0).sum() >= mask.sum()
