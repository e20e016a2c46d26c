"""Procedural synthetic scenes with exact ground truth: textured shapes overlapping on textured backgrounds.

Every pixel belongs to exactly one segment (a background 'stuff' band or the top-most shape covering it), except
fragments of occluded shapes too small to click, which go into ignore.
"""
from __future__ import annotations

import cv2
import numpy as np

from train.sample import Sample

ELLIPSE, POLYGON, BLOB, STUFF = 1, 2, 3, 4
CATEGORY_NAMES = {ELLIPSE: "ellipse", POLYGON: "polygon", BLOB: "blob", STUFF: "background"}


class _Grid:
    """Pixel coordinates shared by all textures of one scene size."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.y, self.x = np.mgrid[0:h, 0:w].astype(np.float32)


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """HxW float32 noise in about [0, 1], smooth at the scale of h / cells (cheap: upsampled small grid)."""
    small = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, g: _Grid, box: tuple[slice, slice]) -> np.ndarray:
    """float32 texture over the crop `box` of the image (hxwx3): gradient, smooth noise, stripes or checker."""
    c0, c1 = _color(rng), _color(rng)
    kind = rng.integers(4)
    x, y = g.x[box], g.y[box]
    h, w = x.shape
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(a) + y * np.sin(a)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    elif kind == 1:  # smooth noise
        t = _smooth_noise(rng, h, w, max(1, int(rng.integers(2, 12) * max(h, w) / max(g.h, g.w))))
    elif kind == 2:  # stripes, possibly soft
        a = rng.uniform(0, np.pi)
        period = rng.uniform(4, 24)
        t = 0.5 + 0.5 * np.sin((x * np.cos(a) + y * np.sin(a)) * (2 * np.pi / period))
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)
    else:  # checker
        s = rng.uniform(4, 20)
        t = ((np.floor(x / s) + np.floor(y / s)) % 2).astype(np.float32)
    t = np.clip(t, 0, 1)[:, :, None]
    return c0 + t * (c1 - c0)


def _paint(rng: np.random.Generator, g: _Grid, img: np.ndarray, sel: np.ndarray) -> None:
    """Fill img where sel with a fresh random texture, computed only over sel's bounding box (speed)."""
    ys, xs = np.flatnonzero(sel.any(1)), np.flatnonzero(sel.any(0))
    if len(ys) == 0:
        return
    box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    np.copyto(img[box], _texture(rng, g, box), where=sel[box][:, :, None])


def _background_labels(rng: np.random.Generator, g: _Grid, n: int) -> np.ndarray:
    """HxW int32 map of n (1..3) background bands split by non-crossing wavy boundaries, labels 0..n-1."""
    if n == 1:
        return np.zeros((g.h, g.w), np.int32)
    a = rng.uniform(0, np.pi)
    u = g.x * np.cos(a) + g.y * np.sin(a)  # across the bands
    v = -g.x * np.sin(a) + g.y * np.cos(a)  # along the bands
    lo, hi = float(u.min()), float(u.max())
    span = hi - lo
    amp = rng.uniform(0, 0.06) * span
    # Boundaries at least 4 amplitudes apart so that they never cross: every band stays one connected strip.
    offsets = np.sort(rng.uniform(0.2, 0.8, n - 1)) * span + lo
    for k in range(1, len(offsets)):
        offsets[k] = max(offsets[k], offsets[k - 1] + 4 * amp + 0.1 * span)
    labels = np.zeros((g.h, g.w), np.int32)
    for off in offsets:
        wave = amp * np.sin(v * rng.uniform(0.01, 0.08) + rng.uniform(0, 2 * np.pi))
        labels += (u > off + wave).astype(np.int32)
    return labels


def _shape_mask(rng: np.random.Generator, h: int, w: int, kind: int) -> np.ndarray:
    """HxW uint8 mask (0/1) of one random shape; may extend past the image border."""
    m = np.zeros((h, w), np.uint8)
    cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
    r = rng.uniform(0.05, 0.3) * min(h, w)
    if kind == ELLIPSE:
        axes = (max(2, int(r)), max(2, int(r * rng.uniform(0.3, 1.0))))
        cv2.ellipse(m, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        return m
    if kind == POLYGON:
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * rng.uniform(0.4, 1.0, n)  # random radii: convex or not
    else:  # blob: smooth random radius as a sum of a few harmonics
        n = 48
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        rad = np.ones(n)
        for f in range(1, 5):
            rad += rng.uniform(0, 0.35 / f) * np.cos(f * ang + rng.uniform(0, 2 * np.pi))
        rad = r * np.clip(rad, 0.2, None)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).round().astype(np.int32)
    cv2.fillPoly(m, [pts], 1)
    return m


def make_scene(rng: np.random.Generator, size: tuple[int, int] = (256, 256), max_shapes: int = 8,
               min_area: int | None = None, grid: _Grid | None = None,
               noise: bool = True) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One scene: (HxWx3 uint8 RGB image, HxW int32 label map with -1 = ignore and k>=0 = segment k, categories).

    noise=False leaves out sensor noise and blur, so every pixel shows exactly its segment's texture (for tests).
    """
    h, w = size
    g = grid if grid is not None and (grid.h, grid.w) == (h, w) else _Grid(h, w)
    if min_area is None:
        min_area = max(16, h * w // 1000)  # smaller occluded fragments are not clickable targets

    n_stuff = int(rng.integers(1, 4))
    labels = _background_labels(rng, g, n_stuff)
    img = np.empty((h, w, 3), np.float32)
    cats = [STUFF] * n_stuff
    for k in range(n_stuff):
        _paint(rng, g, img, labels == k)

    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = int(rng.choice([ELLIPSE, POLYGON, BLOB]))
        sel = _shape_mask(rng, h, w, kind).astype(bool)
        if not sel.any():
            continue
        # Later shapes occlude earlier ones: paint and relabel.
        _paint(rng, g, img, sel)
        labels[sel] = len(cats)
        cats.append(kind)

    # Sensor noise and slight blur so edges are not perfect colour steps, as in photos.
    if noise:
        img += rng.normal(0, rng.uniform(0, 6), (h, w, 1)).astype(np.float32)
    if noise and rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    image = np.clip(img, 0, 255).astype(np.uint8)

    # Renumber to the segments that survive: drop empty, put tiny fragments into ignore.
    areas = np.bincount(labels.ravel(), minlength=len(cats))
    keep = np.flatnonzero(areas >= min_area)
    lut = np.full(len(cats), -1, np.int32)
    lut[keep] = np.arange(len(keep), dtype=np.int32)
    return image, lut[labels], [cats[k] for k in keep]


class SyntheticScenes:
    """Dataset of n procedural scenes; scene i depends only on (seed, i), so it is reproducible in any order."""

    def __init__(self, n: int, size: tuple[int, int] = (256, 256), seed: int = 0, max_shapes: int = 8) -> None:
        self.n, self.size, self.seed, self.max_shapes = int(n), (int(size[0]), int(size[1])), int(seed), max_shapes
        self._grid = _Grid(*self.size)
        self.names = [f"synthetic_{self.seed}_{i}" for i in range(self.n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        if not -self.n <= i < self.n:
            raise IndexError(i)
        i %= self.n
        rng = np.random.default_rng([self.seed, i])
        image, labels, cats = make_scene(rng, self.size, self.max_shapes, grid=self._grid)
        segments = [labels == k for k in range(len(cats))]
        return Sample(image=image, segments=segments, ignore=labels < 0, name=self.names[i], category_ids=cats)
