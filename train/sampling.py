"""Turning a `Sample` into training examples, as the seed trains: pick a segment, a pointer inside it and an ROI
that contains it plus other image parts; target = segment within the ROI. A share of the examples are the
correction case of the Segmenter's multi-click mode: a previous mask with errors plus clicks on those errors,
placed as the standard click protocol places them."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model.encoding import encode_pointer, normalize_image

from .sample import Sample

MIN_SEGMENT_AREA = 64


@dataclass
class SamplingConfig:
    size: int = 288                 # square crop side, multiple of 32
    scale_range: tuple[float, float] = (0.9, 2.2)  # zoom relative to "whole image fits the crop"
    p_correction: float = 0.4       # examples with a previous mask and correction clicks
    p_roi_full: float = 0.3         # ROI = whole image
    p_roi_remainder: float = 0.4    # ROI = what is left after other segments were labelled (needs full labels)
    max_extra_clicks: int = 3
    p_center_click: float = 0.5     # first click at the interior-most point, as the click protocol does
    # Examples posed as Segmenter.segment_image poses them (fully labelled sources only): the whole image at
    # about the scale segment_image runs at, ROI = what is left after random other segments were labelled,
    # the pointer at the interior-most point of the ROI, the target whatever segment lies under it.
    p_sweep: float = 0.0
    sweep_scale_range: tuple[float, float] = (0.6, 1.0)
    # Stronger augmentation against over-fitting the few hundred photo objects (0 = off, the old stream): crops
    # rotated by up to this many degrees (in the same warp as scale and crop), and this share of examples turned
    # grey or blurred, so the net leans less on the exact colours and sharpness of the objects it has seen.
    rotate_deg: float = 0.0
    p_grey: float = 0.0
    p_blur: float = 0.0


def interior_point(mask: np.ndarray, rng: np.random.Generator | None = None) -> tuple[int, int]:
    """(x, y) of the pixel farthest from the mask's border; random among near-ties when rng is given."""
    dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    if rng is None:
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return int(x), int(y)
    ys, xs = np.nonzero(dist >= 0.9 * dist.max())
    k = rng.integers(len(xs))
    return int(xs[k]), int(ys[k])


def next_click(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> tuple[int, int, bool] | None:
    """The standard protocol's next click: at the interior-most pixel of the larger error region
    (missed pixels -> positive click, wrong pixels -> negative click). None when there is no error."""
    fn = target & ~pred & valid
    fp = pred & ~target & valid
    best = None
    for err, positive in ((fn, True), (fp, False)):
        if not err.any():
            continue
        dist = cv2.distanceTransform(np.pad(err.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        d = float(dist.max())
        if best is None or d > best[0]:
            y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
            best = (d, int(x), int(y), positive)
    return None if best is None else best[1:]


def _random_blob(shape: tuple[int, int], center: tuple[int, int], radius: float, rng: np.random.Generator
                 ) -> np.ndarray:
    blob = np.zeros(shape, np.uint8)
    n = int(rng.integers(3, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.4, 1.2, n)
    pts = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], 1).astype(np.int32)
    cv2.fillPoly(blob, [pts], 1)
    return blob.astype(bool)


def corrupt_mask(target: np.ndarray, others: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong previous prediction for `target`: grown, shrunk, merged with a neighbour, cut, or
    with a stray blob."""
    h, w = target.shape
    ys, xs = np.nonzero(target)
    size = max(4.0, np.sqrt(len(xs)))
    prev = target.copy()
    for _ in range(int(rng.integers(1, 3))):
        kind = rng.integers(5)
        k = int(max(1, size * rng.uniform(0.05, 0.3)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        if kind == 0:
            prev = cv2.dilate(prev.astype(np.uint8), kernel).astype(bool)
        elif kind == 1:
            prev = cv2.erode(prev.astype(np.uint8), kernel).astype(bool)
        elif kind == 2 and others:
            near = cv2.dilate(target.astype(np.uint8), kernel).astype(bool)
            touching = [o for o in others if (o & near).any()]
            if touching:
                prev = prev | touching[int(rng.integers(len(touching)))]
        elif kind == 3:
            # cut off a part of the object by a random half-plane
            theta = rng.uniform(0, 2 * np.pi)
            cx, cy = xs.mean(), ys.mean()
            yy, xx = np.mgrid[:h, :w]
            offset = rng.uniform(-0.3, 0.5) * size
            prev = prev & (((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) < offset)
        else:
            j = int(rng.integers(len(xs)))
            c = (int(xs[j] + rng.normal(0, size * 0.5)), int(ys[j] + rng.normal(0, size * 0.5)))
            blob = _random_blob((h, w), c, size * rng.uniform(0.15, 0.5), rng)
            prev = (prev | blob) if rng.random() < 0.5 else (prev & ~blob)
    return prev


def _color_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = image.astype(np.float32)
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-25, 25)            # contrast, brightness
    grey = img.mean(2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.7, 1.3)                      # saturation
    return np.clip(img, 0, 255).astype(np.uint8)


def _grey_and_blur(image: np.ndarray, cfg: SamplingConfig, rng: np.random.Generator) -> np.ndarray:
    """The optional photometric part of the stronger augmentation (no random draw when it is off)."""
    if cfg.p_grey > 0 and rng.random() < cfg.p_grey:
        image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    if cfg.p_blur > 0 and rng.random() < cfg.p_blur:
        sigma = float(rng.uniform(0.5, 1.5))
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    return image


def _scale_and_crop(sample: Sample, target_idx: int, cfg: SamplingConfig, rng: np.random.Generator,
                    scale_range: tuple[float, float] | None = None):
    """Scale the sample and cut an SxS crop that holds a random pixel of the target segment."""
    s = cfg.size
    h, w = sample.image.shape[:2]
    scale = s / max(h, w) * float(np.exp(rng.uniform(*np.log(scale_range or cfg.scale_range))))
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    tmask = sample.segments[target_idx]
    ys, xs = np.nonzero(tmask)
    j = int(rng.integers(len(xs)))
    py, px = ys[j] * nh / h, xs[j] * nw / w
    x0 = int(np.clip(px - rng.uniform(0.1, 0.9) * s, min(0, nw - s), max(0, nw - s)))
    y0 = int(np.clip(py - rng.uniform(0.1, 0.9) * s, min(0, nh - s), max(0, nh - s)))
    # One affine warp per array does scale and crop at once: cheaper than resizing whole images and masks.
    m = np.array([[scale, 0, -x0], [0, scale, -y0]], np.float64)
    if cfg.rotate_deg > 0:
        # Rotate about the target pixel's place in the crop, so the target stays in view.
        rot = cv2.getRotationMatrix2D((float(px - x0), float(py - y0)),
                                      float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)), 1.0)
        m = rot @ np.vstack([m, [0, 0, 1]])

    def warp(a: np.ndarray, interp: int, border: int = 0) -> np.ndarray:
        return cv2.warpAffine(a, m, (s, s), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)

    image = warp(sample.image, cv2.INTER_LINEAR)
    inside = warp(np.ones((h, w), np.uint8), cv2.INTER_NEAREST).astype(bool)
    ignore = warp(sample.ignore.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    segs = []
    target = None
    for k, seg in enumerate(sample.segments):
        c = warp(seg.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
        if k == target_idx:
            target = c
        elif c.any():
            segs.append(c)
    return image, target, segs, ignore, inside


def _sweep_example(image: np.ndarray, target: np.ndarray, others: list[np.ndarray], ignore: np.ndarray,
                   inside: np.ndarray, rng: np.random.Generator) -> dict | None:
    """segment_image's question: the pointer at the interior-most point of what is left, the target the
    segment under it (which need not be the segment the crop was centred on)."""
    segments = [target] + others
    roi = inside.copy()
    frac = rng.uniform(0.0, 0.9)
    for m in segments:
        if rng.random() < frac:
            roi &= ~m
    valid = ~ignore
    if (roi & valid).sum() < MIN_SEGMENT_AREA:
        return None
    x, y = interior_point(roi & valid, rng)
    under = [m for m in segments if m[y, x]]
    if not under:
        return None  # unlabelled ground under the pointer: no target to learn
    target = under[0] & roi
    if target.sum() < MIN_SEGMENT_AREA // 4:
        return None
    s = image.shape[0]
    return {
        "image": normalize_image(image),
        "pointer": encode_pointer(s, s, [(x, y, True)], None),
        "roi": roi[None].astype(np.float32),
        "target": target[None].astype(np.float32),
        "valid": valid[None].astype(np.float32),
    }


def make_example(sample: Sample, rng: np.random.Generator, cfg: SamplingConfig | None = None,
                 fully_labelled: bool | None = None) -> dict | None:
    """One training example as numpy arrays (image, pointer, roi, target, valid), or None if the sample has
    no usable segment. `fully_labelled` says whether pixels outside all segments are known to be no segment
    (True for label maps; False for one-object-per-file data)."""
    cfg = cfg or SamplingConfig()
    areas = np.array([m.sum() for m in sample.segments])
    usable = np.nonzero(areas >= MIN_SEGMENT_AREA)[0]
    if len(usable) == 0:
        return None
    if fully_labelled is None:
        fully_labelled = len(sample.segments) > 1
    # (No random draw when p_sweep is 0, so older configurations keep their example streams.)
    sweep = cfg.p_sweep > 0 and fully_labelled and len(usable) > 1 and rng.random() < cfg.p_sweep
    for _attempt in range(5):
        t_idx = int(usable[rng.integers(len(usable))])
        image, target, others, ignore, inside = _scale_and_crop(
            sample, t_idx, cfg, rng, cfg.sweep_scale_range if sweep else None)
        if target.sum() >= MIN_SEGMENT_AREA // 2:
            break
    else:
        return None
    s = cfg.size
    if rng.random() < 0.5:
        image, target, ignore, inside = (a[:, ::-1].copy() for a in (image, target, ignore, inside))
        others = [o[:, ::-1].copy() for o in others]
    image = _color_jitter(image, rng)
    image = _grey_and_blur(image, cfg, rng)

    if sweep:
        return _sweep_example(image, target, others, ignore, inside, rng)

    # ROI: whole image, the unlabelled remainder, or a box around the target.
    r = rng.random()
    if r < cfg.p_roi_full:
        roi = inside.copy()
    elif r < cfg.p_roi_full + cfg.p_roi_remainder and fully_labelled and others:
        roi = inside.copy()
        frac = rng.uniform(0.1, 0.95)
        for o in others:
            if rng.random() < frac:
                roi &= ~o
    else:
        ys, xs = np.nonzero(target)
        bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        mx, my = rng.uniform(0.05, 1.0, 2) * np.array([bw, bh]) + 4
        x0, x1 = int(max(0, xs.min() - mx)), int(min(s, xs.max() + 1 + mx))
        y0, y1 = int(max(0, ys.min() - my)), int(min(s, ys.max() + 1 + my))
        roi = np.zeros((s, s), bool)
        roi[y0:y1, x0:x1] = True
        roi &= inside
    if rng.random() < 0.1:
        # A region already taken by an earlier, imperfect segment may cut into this one.
        ys, xs = np.nonzero(target)
        j = int(rng.integers(len(xs)))
        roi &= ~_random_blob((s, s), (int(xs[j]), int(ys[j])), np.sqrt(len(xs)) * 0.3, rng)
    target = target & roi
    if target.sum() < MIN_SEGMENT_AREA // 4:
        return None
    valid = ~ignore

    if rng.random() < cfg.p_center_click:
        first = interior_point(target, rng)
    else:
        ys, xs = np.nonzero(target)
        j = int(rng.integers(len(xs)))
        first = (int(xs[j]), int(ys[j]))
    clicks = [(first[0], first[1], True)]
    prev = None
    if rng.random() < cfg.p_correction:
        prev = corrupt_mask(target, others, rng) & roi
        corrected = prev
        for _ in range(int(rng.integers(1, cfg.max_extra_clicks + 1))):
            click = next_click(prev, target, valid & roi)
            if click is None:
                break
            clicks.append(click)
            corrected = prev
            # Pretend the click partly fixed its error region, so a later click lands elsewhere.
            x, y, positive = click
            fix = _random_blob((s, s), (x, y), max(3.0, np.sqrt(target.sum()) * 0.15), rng)
            prev = (prev | (fix & target)) if positive else (prev & ~(fix & ~target))
        # As in the Segmenter, the net sees the mask that its last click corrects, not that mask already fixed.
        prev = corrected
    pointer = encode_pointer(s, s, clicks, None if prev is None else prev.astype(np.float32))
    return {
        "image": normalize_image(image),
        "pointer": pointer,
        "roi": roi[None].astype(np.float32),
        "target": target[None].astype(np.float32),
        "valid": valid[None].astype(np.float32),
    }
