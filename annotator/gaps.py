"""Thin unlabelled gaps between segments, and the segment each gap pixel belongs to.

Where the net's answers stop short of each other, or after brush and polygon edits, segments end a few pixels
apart, and a person who wants every pixel labelled would have to paint those slivers by hand. A gap here is an
unlabelled pixel that no disk of diameter ``2 * max_width + 1`` placed inside the unlabelled area covers (the part
a morphological opening removes: strips narrower than that and specks smaller than it), within ``2 * max_width``
pixels of a segment; it takes the label of the nearest labelled pixel. Wider unlabelled areas stay for the person
to click.
"""
from __future__ import annotations

import cv2
import numpy as np


def default_gap_width(height: int, width: int) -> int:
    """Half a percent of the long side, at least 2 px: about one cell of auto-segment's internal size (long side
    320), so a gap one cell wide there is one here (3 px at 960 px, 12 px at 4000 px)."""
    return max(2, int(round(0.005 * max(height, width))))


def gap_labels(labels: np.ndarray, max_width: int) -> np.ndarray:
    """HxW int32: for each gap pixel of the label map (0 = unlabelled) the id of the nearest segment, 0 elsewhere."""
    if max_width < 1:
        raise ValueError(f"max_width must be at least 1 px, got {max_width!r}")
    labels = np.asarray(labels)
    unlabelled = labels == 0
    out = np.zeros(labels.shape, np.int32)
    if not unlabelled.any() or unlabelled.all():
        return out
    k = 2 * int(max_width) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    u8 = unlabelled.astype(np.uint8)
    # Outside the image is no room for the disk: a thin strip between a segment and the image's edge is a gap
    # too (OpenCV's default border would let the disk hang out over the edge and keep the strip).
    opened = cv2.morphologyEx(u8, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    gaps = unlabelled & (opened == 0)
    if not gaps.any():
        return out
    # Distance from each unlabelled pixel to the nearest labelled one, and which labelled pixel that is:
    # DIST_LABEL_PIXEL numbers the zero (labelled) pixels 1, 2, ... in row-major order.
    dist, nearest = cv2.distanceTransformWithLabels(u8, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ids = labels[~unlabelled].astype(np.int32)  # row-major, as the numbering
    gaps &= dist <= 2 * max_width
    out[gaps] = ids[nearest[gaps] - 1]
    return out
