"""Copy-paste scenes: objects cut out of photo sets (with their masks) pasted onto other photos.

A data set of N labelled objects on N photos gives N x N (object, background) pairs instead of N, and the net
sees each object on backgrounds and at scales it never had. Each scene is one background photo with its own
labelled objects, plus 1..`max_objects` pasted objects at random scales and positions; what a pasted object
covers is removed from the masks of everything below it (occlusion), and segments left with too little area are
dropped. Scene k is a pure function of (seed, k), so a run can be resumed and measured reproducibly.

Only pass readers over training files here: the trainer builds this source from the training split of its
object/background sources, so no held-out photo leaks into training through a paste.
"""
from __future__ import annotations

import cv2
import numpy as np

from .sample import DataError, Sample

MIN_VISIBLE_FRACTION = 0.25   # a segment occluded below this share of its area is dropped (a sliver to click)
MIN_AREA = 64


class CopyPasteScenes:
    """A sequence of `n` composite `Sample`s built from `objects` (readers yielding objects to cut out) and
    `backgrounds` (readers yielding photos to paste on; their own segments are kept, occluded where pasted over)."""

    def __init__(self, objects: list, backgrounds: list, n: int = 20000, seed: int = 0, max_objects: int = 3,
                 scale_range: tuple[float, float] = (0.25, 0.9)):
        self.objects = [r for r in objects if len(r)]
        self.backgrounds = [r for r in backgrounds if len(r)]
        if not self.objects or not self.backgrounds:
            raise DataError("copy-paste: needs at least one object and one background image")
        self.n, self.seed, self.max_objects, self.scale_range = n, seed, max_objects, scale_range
        self.names = [f"copypaste{k:06d}" for k in range(n)]

    def __len__(self) -> int:
        return self.n

    @staticmethod
    def _pick(readers: list, rng: np.random.Generator) -> Sample:
        reader = readers[int(rng.integers(len(readers)))]
        return reader[int(rng.integers(len(reader)))]

    def __getitem__(self, k: int) -> Sample:
        if not 0 <= k < self.n:
            raise IndexError(k)
        rng = np.random.default_rng([self.seed, k])
        bg = self._pick(self.backgrounds, rng)
        image = bg.image.copy()
        h, w = image.shape[:2]
        segments = [m.copy() for m in bg.segments]
        areas = [int(m.sum()) for m in segments]
        ignore = bg.ignore.copy()
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            src = self._pick(self.objects, rng)
            if not src.segments:
                continue
            obj_mask = src.segments[int(rng.integers(len(src.segments)))]
            pasted = paste_object(image, src.image, obj_mask, rng, self.scale_range)
            if pasted is None:
                continue
            segments = [m & ~pasted for m in segments]
            ignore &= ~pasted
            segments.append(pasted)
            areas.append(int(pasted.sum()))
        kept = []
        for m, area in zip(segments, areas):
            visible = int(m.sum())
            if visible >= MIN_AREA and visible >= MIN_VISIBLE_FRACTION * area:
                kept.append(m)
            else:
                ignore |= m  # a sliver of an occluded object: neither target nor background
        return Sample(image, kept, ignore, self.names[k])


def paste_object(image: np.ndarray, src_image: np.ndarray, src_mask: np.ndarray, rng: np.random.Generator,
                 scale_range: tuple[float, float] = (0.25, 0.9)) -> np.ndarray | None:
    """Paste the object `src_mask` of `src_image` into `image` (in place) at a random scale (its longer side a
    share `scale_range` of the image's shorter side) and position, flipped half the time; returns the pasted
    object's HxW bool mask in `image`, or None if the object is too small to paste."""
    ys, xs = np.nonzero(src_mask)
    if len(xs) < MIN_AREA:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = src_image[y0:y1, x0:x1]
    cmask = src_mask[y0:y1, x0:x1].astype(np.uint8)
    h, w = image.shape[:2]
    side = min(h, w) * rng.uniform(*scale_range)
    s = side / max(crop.shape[:2])
    nh, nw = max(1, int(round(crop.shape[0] * s))), max(1, int(round(crop.shape[1] * s)))
    nh, nw = min(nh, h), min(nw, w)
    crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    cmask = cv2.resize(cmask, (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    if rng.random() < 0.5:
        crop, cmask = crop[:, ::-1], cmask[:, ::-1]
    if cmask.sum() < MIN_AREA:
        return None
    ty, tx = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
    # A slightly feathered alpha, so the net cannot find pasted objects by their hard cut-out edge alone.
    alpha = cv2.GaussianBlur(cmask.astype(np.float32), (3, 3), 0.8)[..., None]
    region = image[ty:ty + nh, tx:tx + nw].astype(np.float32)
    image[ty:ty + nh, tx:tx + nw] = np.clip(alpha * crop + (1 - alpha) * region, 0, 255).astype(np.uint8)
    out = np.zeros((h, w), bool)
    out[ty:ty + nh, tx:tx + nw] = cmask
    return out
