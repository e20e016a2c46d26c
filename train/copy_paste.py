"""Copy-paste scenes: objects cut out of photo sets (with their masks) pasted onto other photos.

A data set of N labelled objects on N photos gives N x N (object, background) pairs instead of N, and the net
sees each object on backgrounds and at scales it never had. Each scene is one background photo with its own
labelled objects, plus 1..`max_objects` pasted objects at random scales and positions; what a pasted object
covers is removed from the masks of everything below it (occlusion), and segments left with too little area are
dropped. Scene k is a pure function of (seed, k), so a run can be resumed and measured reproducibly.

With `crowd_probability`, a pasted object is instead pasted as a row of 2..`max_copies` copies of itself, each
a little larger or smaller, mirrored or not, touching or overlapping the one before: alike touching neighbours,
each its own segment. People click one rider in a row of riders, one bottle on a shelf; both shipped weights
spilled the first click onto such neighbours on about a sixth of the COCO validation photos
(bench/first_click_spill.py), and photo sets rarely label each of several alike objects.

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
                 scale_range: tuple[float, float] = (0.25, 0.9), crowd_probability: float = 0.0,
                 max_copies: int = 4):
        self.objects = [r for r in objects if len(r)]
        self.backgrounds = [r for r in backgrounds if len(r)]
        if not self.objects or not self.backgrounds:
            raise DataError("copy-paste: needs at least one object and one background image")
        self.n, self.seed, self.max_objects, self.scale_range = n, seed, max_objects, scale_range
        if not 0 <= crowd_probability <= 1 or max_copies < 2:
            raise ValueError(f"need crowd_probability in [0, 1] and max_copies >= 2, got {crowd_probability!r}, "
                             f"{max_copies!r}")
        self.crowd_probability, self.max_copies = float(crowd_probability), int(max_copies)
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
            # (No random draw when crowd_probability is 0, so older configurations keep their scenes.)
            if self.crowd_probability > 0 and rng.random() < self.crowd_probability:
                copies = paste_row(image, src.image, obj_mask, rng, int(rng.integers(2, self.max_copies + 1)),
                                   self.scale_range)
            else:
                copies = [paste_object(image, src.image, obj_mask, rng, self.scale_range)]
            for pasted in copies:
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


def _object_crop(src_image: np.ndarray, src_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The object's bounding-box crop of the image and its mask, or None if it is too small to paste."""
    ys, xs = np.nonzero(src_mask)
    if len(xs) < MIN_AREA:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return src_image[y0:y1, x0:x1], src_mask[y0:y1, x0:x1]


def paste_object(image: np.ndarray, src_image: np.ndarray, src_mask: np.ndarray, rng: np.random.Generator,
                 scale_range: tuple[float, float] = (0.25, 0.9)) -> np.ndarray | None:
    """Paste the object `src_mask` of `src_image` into `image` (in place) at a random scale (its longer side a
    share `scale_range` of the image's shorter side) and position, flipped half the time; returns the pasted
    object's HxW bool mask in `image`, or None if the object is too small to paste."""
    cut = _object_crop(src_image, src_mask)
    if cut is None:
        return None
    h, w = image.shape[:2]
    side = min(h, w) * rng.uniform(*scale_range)
    crop, cmask = _scaled(*cut, side / max(cut[0].shape[:2]), (h, w), rng.random() < 0.5)
    if cmask.sum() < MIN_AREA:
        return None
    ty, tx = int(rng.integers(0, h - cmask.shape[0] + 1)), int(rng.integers(0, w - cmask.shape[1] + 1))
    return _blend(image, crop, cmask, ty, tx)


def paste_row(image: np.ndarray, src_image: np.ndarray, src_mask: np.ndarray, rng: np.random.Generator,
              copies: int, scale_range: tuple[float, float] = (0.25, 0.9)) -> list[np.ndarray]:
    """Paste `copies` copies of one object side by side into `image` (in place), along a direction up to 30
    degrees off horizontal: each copy 0.85-1.15x the first one's size and mirrored half the time, its centre
    55-95% of the two copies' mean width from the previous one's (so neighbours touch or overlap, the later one in
    front). Copies that would not fit in the image are left out. Returns each pasted copy's HxW bool mask, in
    pasting order (what a later copy covers is still in the earlier one's mask); [] if the object is too small."""
    cut = _object_crop(src_image, src_mask)
    if cut is None:
        return []
    h, w = image.shape[:2]
    crop_h, crop_w = cut[0].shape[:2]
    # The first copy's longer side is drawn as for a single paste, then shrunk until the row fits across.
    side = min(h, w) * rng.uniform(*scale_range)
    s = min(side / max(crop_h, crop_w), 0.9 * w / (crop_w * (1 + 0.95 * 1.15 * (copies - 1))))
    angle = np.deg2rad(rng.uniform(-30, 30))
    direction = np.array([np.cos(angle), np.sin(angle)]) * (1 if rng.random() < 0.5 else -1)
    row = []  # (crop, mask, top-left corner relative to the first copy's centre)
    centre = np.zeros(2)
    for k in range(copies):
        ck, mk = _scaled(*cut, s * (rng.uniform(0.85, 1.15) if k else 1.0), (h, w), rng.random() < 0.5)
        size = np.array([mk.shape[1], mk.shape[0]], float)
        if k:  # centre to centre: 55-95% of the two copies' mean width
            centre = centre + direction * 0.5 * (row[-1][1].shape[1] + size[0]) * rng.uniform(0.55, 0.95)
        row.append((ck, mk, (centre - size / 2).round().astype(int)))
    def box(row: list) -> tuple[int, int, int, int]:
        return (min(c[0] for _, _, c in row), min(c[1] for _, _, c in row),
                max(c[0] + m.shape[1] for _, m, c in row), max(c[1] + m.shape[0] for _, m, c in row))

    # Copies that would make the row larger than the image are left out, from the end of the row.
    x0, y0, x1, y1 = box(row)
    while len(row) > 1 and (x1 - x0 > w or y1 - y0 > h):
        row.pop()
        x0, y0, x1, y1 = box(row)
    ox = int(rng.integers(-x0, max(-x0, w - x1) + 1))
    oy = int(rng.integers(-y0, max(-y0, h - y1) + 1))
    return [_blend(image, ck, mk, int(c[1]) + oy, int(c[0]) + ox) for ck, mk, c in row if mk.sum() >= MIN_AREA]


def _scaled(crop: np.ndarray, cmask: np.ndarray, s: float, shape: tuple[int, int], flip: bool
            ) -> tuple[np.ndarray, np.ndarray]:
    """The crop and mask resized by `s` (at most the image's size), mirrored if `flip`."""
    h, w = shape
    nh, nw = max(1, int(round(crop.shape[0] * s))), max(1, int(round(crop.shape[1] * s)))
    nh, nw = min(nh, h), min(nw, w)
    crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    cmask = cv2.resize(cmask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    if flip:
        crop, cmask = crop[:, ::-1], cmask[:, ::-1]
    return crop, cmask


def _blend(image: np.ndarray, crop: np.ndarray, cmask: np.ndarray, ty: int, tx: int) -> np.ndarray:
    """Alpha-blend the crop into `image` at (ty, tx) (in place); the pasted object's HxW bool mask."""
    h, w = image.shape[:2]
    nh, nw = cmask.shape
    # A slightly feathered alpha, so the net cannot find pasted objects by their hard cut-out edge alone.
    alpha = cv2.GaussianBlur(cmask.astype(np.float32), (3, 3), 0.8)[..., None]
    region = image[ty:ty + nh, tx:tx + nw].astype(np.float32)
    image[ty:ty + nh, tx:tx + nw] = np.clip(alpha * crop + (1 - alpha) * region, 0, 255).astype(np.uint8)
    out = np.zeros((h, w), bool)
    out[ty:ty + nh, tx:tx + nw] = cmask
    return out
