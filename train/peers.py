"""OpenCV GrabCut as the peer method that the evaluator and the benchmark run beside the net.

Design of the GrabCut driver (meant to be a fair, ordinary use of GrabCut, not a strawman):

* Same input as the net: the image and the clicks [(x, y, positive)], nothing else (no ground truth, no box
  drawn by an oracle).
* First click: GrabCut needs an initial foreground / background split to fit its colour models. The driver
  marks a square of side sqrt(image area) / 3 centred on the first click as probable foreground (GC_PR_FGD)
  and the rest of the image as probable background (GC_PR_BGD). Both are soft labels: GrabCut may move every
  such pixel across, so the square only seeds the colour models; the object may grow past it or shrink.
* Every click is a disk of radius 5 px of hard labels: GC_FGD for a positive click, GC_BGD for a negative one
  (the radius the net's own click encoding uses). Pixels outside the ROI are hard background.
* Each later click also re-seeds the colour models near it: a disk of radius max(10, side / 8) around it
  becomes probable foreground (positive click) or probable background (negative), except where a hard label
  is set. This is what a user's stroke in OpenCV's own grabcut.py sample does, reduced to a click.
* The GrabCut state is kept between the clicks of one chain: the label mask with GrabCut's own soft labels
  from the last run plus all hard click labels. Each click runs 5 more iterations of
  cv2.grabCut(..., GC_INIT_WITH_MASK), which refits both colour models from that state, so the segmentation
  refines from where it was, as in OpenCV's interactive sample (samples/python/grabcut.py).
* It runs on the image at full resolution (GrabCut's boundaries are best there); `max_side` can bound it.

`GrabCutFreshPeer` is the other way people drive GrabCut with clicks, and the stronger one on the GrabCut
benchmark: every click runs GrabCut afresh on the full image from the clicks alone (no state kept): a disk of
radius 40 px of probable foreground around every positive click, disks of radius 5 px of definite foreground /
background at positive / negative clicks, the rest probable background, 5 iterations of GC_INIT_WITH_MASK. The
evaluator runs both and compares the net with the stronger.

`GrabCutPeer.segment_image` is the same sequential region growing as `Segmenter.segment_image`: click the
interior-most point of the not yet labelled remainder, take GrabCut's segment there inside the remainder,
repeat. It runs at the same internal resolution as the net's (long side 320) and with the same limits.
"""
from __future__ import annotations

import hashlib
import time
from typing import Sequence

import cv2
import numpy as np

Click = tuple[float, float, bool]

CLICK_RADIUS = 5
ITERATIONS = 5
INIT_FRACTION = 1 / 3  # side of the initial probable-foreground square, relative to sqrt(image area)


def _fingerprint(a: np.ndarray) -> str:
    """A cheap identity for an array's content (sampled), so a chain continues only on the same image."""
    flat = np.ascontiguousarray(a).reshape(-1)
    step = max(1, flat.size // 65536)
    return f"{a.shape}{a.dtype}" + hashlib.blake2b(np.ascontiguousarray(flat[::step]).tobytes(),
                                                  digest_size=12).hexdigest()


class GrabCutPeer:
    """Click-driven GrabCut with the same `predict(image, clicks, roi)` call shape as `model.Segmenter`."""

    name = "grabcut"

    def __init__(self, iterations: int = ITERATIONS, click_radius: int = CLICK_RADIUS,
                 init_fraction: float = INIT_FRACTION, max_side: int | None = None):
        self.iterations = iterations
        self.click_radius = click_radius
        self.init_fraction = init_fraction
        self.max_side = max_side
        # State of the last chain: (image id, roi id, clicks, gc label mask, bgd model, fgd model, scale).
        self._state: tuple | None = None

    # ---- one click chain ----
    def _side(self, h: int, w: int) -> int:
        return max(8, int(round(np.sqrt(h * w) * self.init_fraction)))

    def _mark_click(self, gc: np.ndarray, x: float, y: float, positive: bool, first: bool, hard: np.ndarray) -> None:
        h, w = gc.shape
        cx, cy = int(round(min(max(x, 0), w - 1))), int(round(min(max(y, 0), h - 1)))
        side = self._side(h, w)
        if first:
            half = side // 2
            x0, x1 = max(0, cx - half), min(w, cx + half + 1)
            y0, y1 = max(0, cy - half), min(h, cy + half + 1)
            soft = gc[y0:y1, x0:x1]
            soft[~hard[y0:y1, x0:x1]] = cv2.GC_PR_FGD
        else:
            disk = np.zeros((h, w), np.uint8)
            cv2.circle(disk, (cx, cy), max(10, side // 8), 1, -1)
            sel = disk.astype(bool) & ~hard
            gc[sel] = cv2.GC_PR_FGD if positive else cv2.GC_PR_BGD
        disk = np.zeros((h, w), np.uint8)
        cv2.circle(disk, (cx, cy), self.click_radius, 1, -1)
        sel = disk.astype(bool)
        gc[sel] = cv2.GC_FGD if positive else cv2.GC_BGD
        hard |= sel

    def _grabcut(self, bgr: np.ndarray, gc: np.ndarray, bgd: np.ndarray, fgd: np.ndarray) -> None:
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        n_fg = int(fg.sum())
        if n_fg < 10 or gc.size - n_fg < 10:
            # GrabCut cannot fit a 5-component colour model to fewer pixels: keep the labels as they are.
            return
        try:
            cv2.grabCut(bgr, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            pass  # degenerate colour statistics (e.g. a flat image): keep the previous labels

    @staticmethod
    def _start_roi(image: np.ndarray, clicks: Sequence[Click], roi: np.ndarray | None) -> np.ndarray:
        if not clicks:
            raise ValueError("at least one click is needed")
        return np.ones(image.shape[:2], bool) if roi is None else np.asarray(roi, bool)

    def _scale(self, h: int, w: int) -> float:
        return self.max_side / max(h, w) if self.max_side and max(h, w) > self.max_side else 1.0

    @staticmethod
    def _working_copy(image: np.ndarray, roi_b: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """(BGR image, ROI) at the working scale GrabCut runs at."""
        h, w = image.shape[:2]
        small = image if scale == 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)),
                                                      interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(np.ascontiguousarray(small[..., :3]), cv2.COLOR_RGB2BGR)
        sh, sw = bgr.shape[:2]
        roi_s = roi_b if scale == 1.0 else cv2.resize(roi_b.astype(np.uint8), (sw, sh),
                                                      interpolation=cv2.INTER_NEAREST).astype(bool)
        return bgr, roi_s

    def predict(self, image: np.ndarray, clicks: Sequence[Click], roi: np.ndarray | None = None) -> np.ndarray:
        """HxW bool mask for the clicks (first positive) inside `roi`; continues the previous chain when the
        image and roi are the same objects and `clicks` extends the previous clicks."""
        roi_b = self._start_roi(image, clicks, roi)
        h, w = image.shape[:2]
        if not roi_b[int(clicks[0][1]), int(clicks[0][0])]:
            return np.zeros((h, w), bool)  # the first click is outside the ROI: nothing to find
        scale = self._scale(h, w)
        key = (_fingerprint(image), None if roi is None else _fingerprint(roi_b))
        clicks = [(float(cx), float(cy), bool(p)) for cx, cy, p in clicks]
        st = self._state
        if st is not None and st[0] == key and tuple(st[1]) == tuple(clicks[:len(st[1])]):
            _, done, gc, hard, bgd, fgd, bgr = st
            gc, hard = gc.copy(), hard.copy()
        else:
            done = []
            bgr, roi_s = self._working_copy(image, roi_b, scale)
            sh, sw = bgr.shape[:2]
            gc = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
            gc[~roi_s] = cv2.GC_BGD
            hard = ~roi_s
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        if len(done) < len(clicks):
            for k in range(len(done), len(clicks)):
                cx, cy, p = clicks[k]
                self._mark_click(gc, cx * scale, cy * scale, p, first=(k == 0), hard=hard)
            self._grabcut(bgr, gc, bgd, fgd)
        self._state = (key, list(clicks), gc, hard, bgd, fgd, bgr)
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        if scale != 1.0:
            fg = cv2.resize(fg.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        return fg & roi_b

    # ---- full image ----
    def segment_image(self, image: np.ndarray, roi: np.ndarray | None = None, max_segments: int = 50,
                      min_area_fraction: float = 0.001, side: int = 320,
                      time_limit: float | None = None, miss_disk_fraction: float = 1.0) -> np.ndarray:
        """HxW int32 label map (0 = unassigned) by sequential GrabCut from interior-most points, as
        `Segmenter.segment_image` does with the net (after a miss, no later pointer within `miss_disk_fraction`
        of the missed pointer's distance to the edge of what is left). Stops early after `time_limit` seconds."""
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        roi_b = np.ones((h, w), bool) if roi is None else np.asarray(roi, bool)
        scale = min(1.0, side / max(h, w))
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = image if scale == 1.0 else cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        small = np.ascontiguousarray(small)
        remaining = cv2.resize(roi_b.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
        candidates = remaining.copy()
        min_area = max(4, int(min_area_fraction * sw * sh))
        labels_small = np.zeros((sh, sw), np.int32)
        n = 0
        while n < max_segments and candidates.sum() >= min_area:
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                break
            dist = cv2.distanceTransform(np.pad(candidates.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
            py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
            self._state = None
            mask = self.predict(small, [(float(px), float(py), True)], roi=remaining.copy()) & remaining
            if mask.sum() >= min_area and mask[py, px]:
                n += 1
                labels_small[mask] = n
                remaining &= ~mask
                candidates &= ~mask
            else:
                r = max(2, int(miss_disk_fraction * dist[py, px]))
                cv2.circle(candidates.view(np.uint8), (int(px), int(py)), r, 0, -1)
        self._state = None
        if scale == 1.0:
            return labels_small
        return cv2.resize(labels_small, (w, h), interpolation=cv2.INTER_NEAREST) * roi_b


class GrabCutFreshPeer(GrabCutPeer):
    """GrabCut run afresh for every click set: probable-foreground disks of `seed_radius` around the positive
    clicks, hard disks of `click_radius` at all clicks, the rest probable background."""

    name = "grabcut-fresh"

    def __init__(self, iterations: int = ITERATIONS, click_radius: int = CLICK_RADIUS, seed_radius: int = 40,
                 max_side: int | None = None):
        super().__init__(iterations=iterations, click_radius=click_radius, max_side=max_side)
        self.seed_radius = seed_radius

    def predict(self, image: np.ndarray, clicks: Sequence[Click], roi: np.ndarray | None = None) -> np.ndarray:
        roi_b = self._start_roi(image, clicks, roi)
        h, w = image.shape[:2]
        if not roi_b[int(clicks[0][1]), int(clicks[0][0])]:
            return np.zeros((h, w), bool)  # the first click is outside the ROI: nothing to find
        scale = self._scale(h, w)
        bgr, roi_s = self._working_copy(image, roi_b, scale)
        sh, sw = bgr.shape[:2]
        gc = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
        pts = [(int(round(min(max(cx * scale, 0), sw - 1))), int(round(min(max(cy * scale, 0), sh - 1))), bool(p))
               for cx, cy, p in clicks]
        for cx, cy, p in pts:
            if p:
                cv2.circle(gc, (cx, cy), self.seed_radius, int(cv2.GC_PR_FGD), -1)
        for cx, cy, p in pts:  # hard labels last, so a negative click inside a positive's seed disk wins there
            cv2.circle(gc, (cx, cy), self.click_radius, int(cv2.GC_FGD if p else cv2.GC_BGD), -1)
        gc[~roi_s] = cv2.GC_BGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        self._grabcut(bgr, gc, bgd, fgd)
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        if scale != 1.0:
            fg = cv2.resize(fg.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        return fg & roi_b


PEERS = {"grabcut": GrabCutPeer, "grabcut-fresh": GrabCutFreshPeer}
