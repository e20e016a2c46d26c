"""Turning clicks, ROI and previous mask into the net's input tensors; shared by inference and training so
both see exactly the same encoding."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .net import PIXEL_MEAN, PIXEL_STD, POINTER_CHANNELS

CLICK_RADIUS = 5  # pixels at the net's input resolution; one pixel alone is too weak a signal after a stride-2 conv

Click = tuple[float, float, bool]  # (x, y, positive)


def encode_pointer(height: int, width: int, clicks: Sequence[Click], prev_mask: np.ndarray | None = None,
                   radius: int = CLICK_RADIUS) -> np.ndarray:
    """POINTER_CHANNELS x H x W float32: disks at positive clicks, disks at negative clicks, previous mask."""
    out = np.zeros((POINTER_CHANNELS, height, width), np.float32)
    for x, y, positive in clicks:
        cx = int(round(min(max(x, 0), width - 1)))
        cy = int(round(min(max(y, 0), height - 1)))
        cv2.circle(out[0 if positive else 1], (cx, cy), radius, 1.0, -1)
    if prev_mask is not None:
        out[2] = prev_mask
    return out


def normalize_image(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> 3xHxW float32 as the encoder was trained."""
    return ((image.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)
