"""The inference API: set an image, ask with clicks (and an ROI), get a mask and a score.

    seg = Segmenter.from_pretrained()
    pred = seg.predict(image, [(x, y, True)], roi=unlabelled)
    labels = seg.segment_image(image)

The net always runs at a bounded internal resolution (long side `max_side`), so a 20-megapixel photo costs the
same inside the net as a 640x480 one; only the final mask is brought back to full resolution.

Multi-click correction: each click after the first runs the net again with (a) all clicks so far in the pointer
channels, (b) the previous mask as an extra pointer channel, and (c) a zoomed-in crop around the previous mask
and the clicks, so corrections see fine detail.
"""
from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from .guided import GuidedFilter
from .encoding import CLICK_RADIUS, Click, encode_pointer, normalize_image
from .net import PointerSegNet, fuse_for_inference
from .runtime import default_backend, make_runner
from .weights import WeightsError, load_net

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
BUNDLED_WEIGHTS = RESOURCES / "pointer_seg.safetensors"

ProgressCallback = Callable[[float], Optional[bool]]
PreviewCallback = Callable[[np.ndarray, float], None]


@dataclass
class Prediction:
    mask: np.ndarray   # HxW bool at full resolution, never outside the ROI
    score: float       # the net's estimate of the mask's IoU, in [0, 1]
    seconds: float = 0.0
    # Every reading of the first click, the default first: distinct masks the net gave the click in its other
    # views (a part or the whole object, one of a group or the group), as SAM's multimask output. The mask
    # above builds on readings[reading]; predict(..., reading=k) builds on another one.
    readings: tuple = ()
    reading: int = 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def net_input_size(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """(nw, nh, pw, ph): a width x height window scaled to long side `side`, and that size padded to the
    multiples of 32 the encoder needs (the input the net really runs on)."""
    scale = side / max(width, height)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    return nw, nh, -(-nw // 32) * 32, -(-nh // 32) * 32


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB from RGB, RGBA, greyscale (HxW or HxWx1); anything else is a ValueError saying why."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0-255), got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    return image


def _fingerprint(a: np.ndarray | None) -> str:
    if a is None:
        return "none"
    if a.dtype == bool:
        # Masks are hashed whole (packed, 1 bit a pixel): labelling a thin segment changes only a few pixels.
        data = np.packbits(a)
    else:
        # Sampled: hashing every pixel of a 20 MP image would cost a click's time. Whole pixels on a spatial
        # grid, so every channel counts (a flat stride can fall on one channel only).
        step = max(1, int(np.ceil(np.sqrt(a.shape[0] * a.shape[1] / 65536))))
        data = np.ascontiguousarray(a[::step, ::step])
    return f"{a.shape}{a.dtype}" + hashlib.blake2b(data.tobytes(), digest_size=12).hexdigest()


class Segmenter:
    """Click-to-mask inference on the pointer/ROI net."""

    def __init__(self, net: PointerSegNet, device: str | torch.device = "cpu", max_side: int = 448,
                 full_image_side: int = 320, info: dict | None = None, local_corrections: bool = False,
                 backend: str | None = None, flip_average: bool = False, refine_first: str = "best",
                 zoom_min_fraction: float = 0.25, guided_radius: int = 4, guided_eps: float = 0.01,
                 threshold: float = 0.5, first_click_windows: Sequence[float] = (0.6, 0.4, 0.25),
                 large_object_side: int = 320, large_object_fraction: float = 0.1,
                 large_object_refine_sides: Sequence[int] = (320, 448), small_object_refine: bool = True,
                 work_side: int = 0, drop_detached_parts: bool = True, first_click_confident: float = 0.9):
        self.device = str(device)
        # "auto": on the CPU the fastest installed runtime that reproduces the net (OpenVINO, then ONNX Runtime;
        # see model/runtime.py and bench/bench_segmenter.py --runtimes), else eager PyTorch; "openvino", "onnx"
        # or "torch" force one; None: $POINTER_ANNOTATOR_BACKEND, else "auto" (model.runtime.default_backend).
        self.backend = backend if backend is not None else default_backend()
        self._set_net(net)
        self.max_side = max_side              # internal long side for clicks
        self.full_image_side = full_image_side  # internal long side for segment_image (many runs per image)
        self.info = info or {}
        # A correction takes the net's whole new mask inside its zoom window (_apply_window); with
        # local_corrections only the connected change under the click (_apply_correction). The window default
        # needs fewer clicks with the iteratively trained weights (held-out pooled NoC@90 7.87 -> 6.96).
        self.local_corrections = local_corrections
        # A negative click on a part of the mask that holds no positive click removes that whole part
        # (_drop_detached_part) instead of whatever the net makes of it.
        self.drop_detached_parts = bool(drop_detached_parts)
        # flip_average: each pass also runs on the mirrored window and the two logits are averaged (twice the net
        # time). refine_first: after the first click, run it again in a zoomed window around the mask found, so a
        # small object is seen at the net's full internal resolution ("prev": with that mask as the previous-mask
        # channel, "fresh": without it, "best": as "prev" but kept only if the net scores it higher, "off").
        # "best" is the default: a better first click on all three held-out sets (IoU@1 photos
        # 0.616 -> 0.652) at the same number of clicks; one more net pass when the first mask is small.
        if refine_first not in ("off", "prev", "fresh", "best"):
            raise ValueError(f"refine_first must be 'off', 'prev', 'fresh' or 'best', got {refine_first!r}")
        self.flip_average = bool(flip_average)
        # The smallest zoom window, as a fraction of the image's long side: smaller shows small objects larger.
        if not 0 < zoom_min_fraction <= 1:
            raise ValueError(f"zoom_min_fraction must be in (0, 1], got {zoom_min_fraction!r}")
        self.zoom_min_fraction = float(zoom_min_fraction)
        self.refine_first = refine_first
        # guided_radius > 0: the probabilities pass through a colour guided filter at the net's internal size
        # (model/guided.py), so outlines follow the image's edges; radius in internal pixels, 0 = off. Radius 4,
        # eps 0.01 needed fewer clicks on all three held-out sets (docs/benchmarks.md), for ~20 ms a click.
        if guided_radius < 0 or guided_eps <= 0:
            raise ValueError(f"guided_radius must be >= 0 and guided_eps > 0, got {guided_radius!r}, {guided_eps!r}")
        self.guided_radius = int(guided_radius)
        # A pixel is in the mask where the probability exceeds `threshold` (compared on the uint8 scale).
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        self.threshold = float(threshold)
        self.guided_eps = float(guided_eps)
        # first_click_windows: the first click also runs in square windows centred on it, each this fraction of
        # the image's long side; a window's mask replaces the whole-image one when the net scores it higher and
        # it does not run into the window's edge (a cut-off object). A small object among similar ones is then
        # seen larger, with less of its surroundings to spill into. The default because on held-out photos
        # NoC@90 5.46 -> 4.88, IoU@1 0.653 -> 0.698; held-out CamVid frames unchanged; three more net
        # passes on the first click only. () turns it off.
        if any(not 0 < f < 1 for f in first_click_windows):
            raise ValueError(f"first_click_windows must be fractions in (0, 1), got {first_click_windows!r}")
        self.first_click_windows = tuple(float(f) for f in first_click_windows)
        # first_click_confident: the windows above are skipped once the first click's mask scores at least this
        # (the net's own IoU estimate): a window won too rarely over such a mask to pay for its pass. On the 401
        # validation photo objects 0.9 changed no first mask (IoU@1 0.654 either way) and cut the first click's
        # net work from 5.5 to 4.0 passes of 448 x 448. 1.0 never skips.
        if not 0 < first_click_confident <= 1:
            raise ValueError(f"first_click_confident must be in (0, 1], got {first_click_confident!r}")
        self.first_click_confident = float(first_click_confident)
        # large_object_side > 0: the first click also runs on the whole image shown at this smaller long side, and
        # that mask replaces the full view's when it covers at least `large_object_fraction` of the ROI and holds
        # the click. The net finds a large object more whole when it is shown smaller (held-out objects above 15%
        # of the image: first-click IoU photos 0.646 at 448 -> 0.722 at 320, CamVid 0.745 -> 0.789;
        # bench/first_click_sides.py), small ones the other way round, hence the size test. The smaller view is
        # asked always, not only when the full view's mask is already large, so a large object that the full
        # view found only in part is found too (measured with the refinement below).
        # One more net pass on the first click, at the smaller size; 0 = off.
        if large_object_side < 0 or not 0 < large_object_fraction <= 1:
            raise ValueError(f"need large_object_side >= 0 and large_object_fraction in (0, 1], got "
                             f"{large_object_side!r}, {large_object_fraction!r}")
        self.large_object_side = int(large_object_side)
        self.large_object_fraction = float(large_object_fraction)
        # large_object_refine_sides: after the large-object view, the click runs again with that view's mask in
        # the previous-mask channel, once per side listed, each pass refining the last one's mask (kept while it
        # holds the click). The net, trained to correct a previous mask, tightens a large mask's outline this
        # way. The default with the always-asked smaller view, chosen on the held-out sets (1-3 passes
        # at 320/448 compared): first-click IoU photos 0.707 -> 0.716, CamVid 0.704 -> 0.723, pooled NoC@90
        # 6.10 -> 6.06; two more net passes when the smaller view's mask is taken. () = off.
        if any(int(v) < 32 for v in large_object_refine_sides):
            raise ValueError(f"large_object_refine_sides must be sides of at least 32 px, got "
                             f"{large_object_refine_sides!r}")
        self.large_object_refine_sides = tuple(int(v) for v in large_object_refine_sides)
        # small_object_refine: a first mask smaller than `large_object_fraction` of the ROI, as the windows above
        # left it, is refined once more: the click again in the zoom window around it, with it as the previous
        # mask; kept if it holds the click. The default, chosen on the held-out sets after the two
        # large-object changes: IoU@1 photos 0.716 -> 0.728, NoC@90 5.07 -> 4.90; CamVid frames unchanged.
        # One more net pass on the first click when its mask is small; False = off.
        self.small_object_refine = bool(small_object_refine)
        # work_side: a click on an image whose long side exceeds this runs on a copy scaled down to it, and the
        # masks come back at full resolution (inside the full-resolution ROI). 0 = the smallest side at which
        # every view of a click still reaches the net's internal size: max_side over the smallest window
        # fraction (1792 px with the defaults), so on smaller images nothing changes, and on a 24 MP photo no
        # view loses detail while the resizes of the image, ROI and masks shrink tenfold. -1 = never scale.
        if work_side < -1:
            raise ValueError(f"work_side must be -1, 0 or a side in pixels, got {work_side!r}")
        smallest = min((self.zoom_min_fraction, *self.first_click_windows))
        self.work_side = int(work_side) if work_side else int(np.ceil(max_side / smallest))
        # Readings of a first click offered beside the default (Prediction.readings): at most this many more, each
        # with IoU below `reading_overlap` with the default and with one another.
        self.max_readings = 3
        self.reading_overlap = 0.75
        self._seen: list | None = None        # (mask, score) of every view of the first click being computed
        self._readings: tuple | None = None   # (image/ROI key, first click, readings) of the last first click
        self._last: tuple | None = None       # (key, clicks, mask) of the last predict, for correction chains
        self._resized: tuple | None = None    # (key, side, resized image) so repeated clicks skip the resize
        self._roi_small: tuple | None = None  # ((roi key, window, side), resized ROI), the same for the ROI
        self._pyramid: tuple | None = None    # (image key, [image, image/2, ...]) for correction windows
        self._guide: tuple | None = None      # ((image key, window, side, radius, eps), GuidedFilter)
        self._work_image: tuple | None = None  # (image key, image scaled to work_side)
        self._work_roi: tuple | None = None    # ((roi key, shape), ROI scaled to work_side)

    # ---- construction ----
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None, **kwargs) -> "Segmenter":
        """Load weights (default: the ones bundled in resources/) on CUDA when available, else CPU."""
        if path is None:
            path = BUNDLED_WEIGHTS
            if not Path(path).is_file():
                raise WeightsError(f"no trained weights bundled: {path} is missing (train them with "
                                   "`python -m train`, or pass path=...)")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        net, info = load_net(path)
        return cls(net, device, info=info, **kwargs)

    @classmethod
    def random_init(cls, seed: int = 0, device: str = "cpu", **kwargs) -> "Segmenter":
        """An untrained net (deterministic for a seed): for tests and plumbing, never for real use."""
        torch.manual_seed(seed)
        return cls(PointerSegNet(pretrained_backbone=False), device, info={"untrained": True}, **kwargs)

    def _set_net(self, net: PointerSegNet) -> None:
        # BatchNorm folded into the convolutions: same masks, less work per click. A copy, so a caller's
        # (training) net is left as it was.
        self.net = fuse_for_inference(copy.deepcopy(net)).to(self.device)
        self._runner = make_runner(self.net, self.device, self.backend)
        self._last = None
        self._readings = None

    @property
    def runtime(self) -> str:
        """What runs the net: "openvino", "onnxruntime" or "torch"."""
        return self._runner.name

    def load_weights(self, path: str | Path) -> dict:
        """Swap in other weights (e.g. after fine-tuning) without rebuilding the Segmenter."""
        net, info = load_net(path)
        self._set_net(net)
        self.info = info
        return info

    # ---- the net on one window of the image ----
    def _run(self, image: np.ndarray, roi: np.ndarray, clicks: Sequence[Click], prev: np.ndarray | None,
             window: tuple[int, int, int, int], side: int, image_key: str = "", roi_key: str = ""
             ) -> tuple[np.ndarray, float]:
        """Probabilities (uint8, 255 = 1) for `window` (x0, y0, x1, y1) of the image, computed at internal long
        side `side` and brought to the window's full resolution, plus the score. uint8 rather than float keeps
        the full-resolution temporaries at a byte a pixel on 20-megapixel images."""
        x0, y0, x1, y1 = window
        ww, wh = x1 - x0, y1 - y0
        nw, nh, pw, ph = net_input_size(ww, wh, side)
        scale = side / max(ww, wh)  # for the pyramid level below
        whole = (x0, y0, x1, y1) == (0, 0, image.shape[1], image.shape[0])
        cache_key = (image_key, side)
        if whole and image_key and self._resized is not None and self._resized[0] == cache_key:
            small = self._resized[1]
        else:
            # From the coarsest cached pyramid level that still has the window at >= the internal size: a
            # correction's window on a 12 MP photo is then resized from a few hundred thousand pixels, not
            # millions (INTER_AREA on the full image cost ~20 ms a click).
            src, f = image, 1
            if image_key and scale <= 0.25:
                levels = self._pyramid_for(image, image_key)
                level = 0
                while level + 1 < len(levels) and 2 ** (level + 1) * scale <= 0.5:
                    level += 1  # at this level the window still has at least twice nw x nh pixels a side
                src, f = levels[level], 2 ** level
            fx0, fy0 = x0 // f, y0 // f
            fx1, fy1 = max(fx0 + 1, -(-x1 // f)), max(fy0 + 1, -(-y1 // f))
            crop = src[fy0:fy1, fx0:fx1]
            interp = cv2.INTER_AREA if nw < crop.shape[1] else cv2.INTER_LINEAR
            small = cv2.resize(crop, (nw, nh), interpolation=interp)
            if whole and image_key:
                self._resized = (cache_key, small)
        roi_key = (roi_key, window, side) if roi_key else None
        if roi_key is not None and self._roi_small is not None and self._roi_small[0] == roi_key:
            roi_small = self._roi_small[1]  # the same ROI as the last click: a 12 MP resize saved
        else:
            roi_small = cv2.resize(roi[y0:y1, x0:x1].view(np.uint8) * np.uint8(255), (nw, nh),
                                   interpolation=cv2.INTER_AREA) > 127
            if roi_key is not None:
                self._roi_small = (roi_key, roi_small)
        prev_small = None
        if prev is not None:
            prev_small = cv2.resize(prev[y0:y1, x0:x1].view(np.uint8) * np.uint8(255), (nw, nh),
                                    interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        sx, sy = nw / ww, nh / wh
        local = [((x - x0 + 0.5) * sx - 0.5, (y - y0 + 0.5) * sy - 0.5, p) for x, y, p in clicks]
        img_t = np.zeros((1, 3, ph, pw), np.float32)
        img_t[0, :, :nh, :nw] = normalize_image(small)
        ptr_t = np.zeros((1, 3, ph, pw), np.float32)
        ptr_t[0, :, :nh, :nw] = encode_pointer(nh, nw, local, prev_small)
        roi_t = np.zeros((1, 1, ph, pw), np.float32)
        roi_t[0, 0, :nh, :nw] = roi_small
        logits, score = self._runner(img_t, ptr_t, roi_t)
        if self.flip_average:
            def mirrored(t: np.ndarray) -> np.ndarray:
                m = np.zeros_like(t)  # the content mirrored in place, the padding stays right/bottom
                m[..., :nh, :nw] = t[..., :nh, :nw][..., ::-1]
                return m
            logits_m, score_m = self._runner(mirrored(img_t), mirrored(ptr_t), mirrored(roi_t))
            logits = (np.asarray(logits, np.float32) + mirrored(np.asarray(logits_m, np.float32))) / 2
            score = (float(np.ravel(score)[0]) + float(np.ravel(score_m)[0])) / 2
        # sigmoid(l) > 0.5 <=> l > 0: the uint8 probability map keeps the decision and smooth upsampling.
        prob = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits[0, 0, :nh, :nw], np.float32), -30, 30)))
        if self.guided_radius > 0:
            # The guide's statistics are kept while image, window and side stay the same: segment_image's
            # pointers all run on one image, so each pays only for filtering its own map.
            guide_key = (image_key, window, side, self.guided_radius, self.guided_eps) if image_key else None
            if guide_key is not None and self._guide is not None and self._guide[0] == guide_key:
                guide = self._guide[1]
            else:
                guide = GuidedFilter(small, self.guided_radius, self.guided_eps)
                if guide_key is not None:
                    self._guide = (guide_key, guide)
            prob = np.clip(guide(prob), 0.0, 1.0)
        prob = (255.0 * prob).round().astype(np.uint8)
        score = float(1.0 / (1.0 + np.exp(-float(np.ravel(score)[0]))))
        return cv2.resize(prob, (ww, wh), interpolation=cv2.INTER_LINEAR), score

    def _pyramid_for(self, image: np.ndarray, image_key: str) -> list[np.ndarray]:
        """[image, image / 2, image / 4, ...] down to about the internal size, cached for the current image."""
        if self._pyramid is not None and self._pyramid[0] == image_key:
            return self._pyramid[1]
        levels = [image]
        while max(levels[-1].shape[:2]) >= 4 * self.max_side:
            levels.append(cv2.pyrDown(levels[-1]))
        self._pyramid = (image_key, levels)
        return levels

    def _apply_correction(self, prev: np.ndarray, new_window: np.ndarray, click: Click, roi: np.ndarray,
                          window: tuple[int, int, int, int]) -> np.ndarray:
        """The contract of a correction click: a positive click adds the missed region under it, a negative one
        removes the wrong region under it, and nothing else changes. Of the net's new mask (`new_window`, the
        window's part) only the connected piece of the change that holds the click is taken: changes far from
        the click (the net re-deciding parts the person had already accepted by not clicking there) are
        dropped. If the net ignored the click, a disk of the click's size is added or removed, so every click
        has an effect. Works inside the window only; the piece is found by a flood fill from the click, whose
        cost is the piece's size, not the image's."""
        x, y, positive = int(click[0]), int(click[1]), bool(click[2])
        x0, y0, x1, y1 = window
        prev_window = prev[y0:y1, x0:x1]
        change = (new_window & ~prev_window) if positive else (prev_window & ~new_window)
        if change[y - y0, x - x0]:
            fill = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
            cv2.floodFill(change.view(np.uint8), fill, (x - x0, y - y0), 1, 0, 0,
                          8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
            piece = fill[1:-1, 1:-1].view(bool)
        else:
            piece = self._click_disk(click, window)
        out = prev.copy()
        region = out[y0:y1, x0:x1]
        if positive:
            region |= piece & roi[y0:y1, x0:x1]
        else:
            region &= ~piece
        return out

    def _click_disk(self, click: Click, window: tuple[int, int, int, int]) -> np.ndarray:
        """The click as the net sees it (its encoded disk), in the window's pixels."""
        x0, y0, x1, y1 = window
        r = max(2, round(CLICK_RADIUS * max(x1 - x0, y1 - y0) / self.max_side))
        disk = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.circle(disk, (int(click[0]) - x0, int(click[1]) - y0), r, 1, -1)
        return disk.view(bool)

    def _apply_window(self, prev: np.ndarray, new_window: np.ndarray, click: Click, roi: np.ndarray,
                      window: tuple[int, int, int, int]) -> np.ndarray:
        """The net's whole new mask inside the correction window (outside it nothing changes). If the net
        ignored the click, a disk of the click's size is added or removed, so every click has an effect."""
        x, y, positive = int(click[0]), int(click[1]), bool(click[2])
        x0, y0, x1, y1 = window
        out = prev.copy()
        region = out[y0:y1, x0:x1]
        region[:] = new_window
        if region[y - y0, x - x0] != positive:
            disk = self._click_disk(click, window)
            if positive:
                region |= disk & roi[y0:y1, x0:x1]
            else:
                region &= ~disk
        return out

    @staticmethod
    def _drop_detached_part(prev: np.ndarray, mask: np.ndarray, clicks: Sequence[Click],
                            window: tuple[int, int, int, int]) -> np.ndarray:
        """A negative click (the last of `clicks`) on a part of the previous mask that holds no positive click
        removes that whole part: of the corrected `mask`, every piece that holds no positive click and shares no
        pixel with the rest of the previous mask goes (the clicked part, and what the net made of it). Without
        this the net shifted such a detached blob (a clock tower found with a car) instead of dropping it, one
        negative click after another. Works inside the correction window, which holds the previous mask and
        every click; outside it the mask is unchanged."""
        x0, y0, x1, y1 = window
        x, y = int(clicks[-1][0]) - x0, int(clicks[-1][1]) - y0
        prev_w = prev[y0:y1, x0:x1]
        if not (0 <= x < x1 - x0 and 0 <= y < y1 - y0) or not prev_w[y, x]:
            return mask
        fill = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
        cv2.floodFill(np.ascontiguousarray(prev_w).view(np.uint8), fill, (x, y), 1, 0, 0,
                      8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
        part = fill[1:-1, 1:-1].view(bool)
        positives = [(int(cx) - x0, int(cy) - y0) for cx, cy, positive in clicks if positive]
        positives = [(px, py) for px, py in positives if 0 <= px < x1 - x0 and 0 <= py < y1 - y0]
        if any(part[py, px] for px, py in positives):
            return mask  # the click trims the object itself: the correction stands as the net gave it
        mask_w = mask[y0:y1, x0:x1]
        _, pieces = cv2.connectedComponents(np.ascontiguousarray(mask_w).view(np.uint8), connectivity=8)
        kept = set(np.unique(pieces[mask_w & prev_w & ~part]).tolist())
        kept.update(int(pieces[py, px]) for px, py in positives)
        dropped = np.setdiff1d(np.unique(pieces[mask_w]), np.fromiter(kept, np.int64, len(kept)))
        if not len(dropped):
            return mask
        out = mask.copy()
        out[y0:y1, x0:x1] &= ~np.isin(pieces, dropped)
        return out

    def _refine(self, image: np.ndarray, roi: np.ndarray, clicks: Sequence[Click], mask: np.ndarray,
                score: float, key: tuple) -> tuple[np.ndarray, float]:
        """The first click again, in the zoomed window around its mask: worth it only when the window is much
        smaller than the image (else the net would see the same pixels again)."""
        h, w = mask.shape
        window = self._zoom_window(mask, clicks, (h, w), self.zoom_min_fraction)
        x0, y0, x1, y1 = window
        if (x1 - x0) * (y1 - y0) > 0.5 * h * w:
            return mask, score
        prev = mask if self.refine_first in ("prev", "best") else None
        prob, score2 = self._run(image, roi, clicks, prev, window, self.max_side, key[0], key[1])
        refined = np.zeros_like(mask)
        refined[y0:y1, x0:x1] = (prob > self._cut) & roi[y0:y1, x0:x1]
        self._note(refined, score2, clicks[0])
        cx, cy = int(clicks[0][0]), int(clicks[0][1])
        if not refined[cy, cx]:
            return mask, score  # the zoomed view lost the clicked object: keep what the whole view found
        if self.refine_first == "best" and score2 < score:
            return mask, score  # "best": the view whose mask the net's own score (predicted IoU) rates higher
        return refined, score2

    @staticmethod
    def _zoom_window(mask: np.ndarray, clicks: Sequence[Click], shape: tuple[int, int], min_fraction: float = 0.25
                     ) -> tuple[int, int, int, int]:
        """A window around the previous mask and all clicks, 40% larger on each side, at least `min_fraction` of
        the image's long side: large enough for context, small enough to see the detail being corrected."""
        h, w = shape
        xs = [c[0] for c in clicks]
        ys = [c[1] for c in clicks]
        if mask.any():
            rows, cols = np.any(mask, 1), np.any(mask, 0)
            ys += [int(np.argmax(rows)), h - 1 - int(np.argmax(rows[::-1]))]
            xs += [int(np.argmax(cols)), w - 1 - int(np.argmax(cols[::-1]))]
        bx0, bx1, by0, by1 = min(xs), max(xs) + 1, min(ys), max(ys) + 1
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        half = max(bx1 - bx0, by1 - by0) * 0.7 + 1
        half = max(half, max(h, w) * min_fraction / 2)
        x0, x1 = int(max(0, cx - half)), int(min(w, cx + half + 1))
        y0, y1 = int(max(0, cy - half)), int(min(h, cy + half + 1))
        return x0, y0, x1, y1

    def _first_click_window(self, image: np.ndarray, roi: np.ndarray, click: Click, fraction: float,
                            mask: np.ndarray, score: float, key: tuple[str, str]) -> tuple[np.ndarray, float]:
        """The first click again in a square window of `fraction` of the long side centred on it; its mask
        wins if the net scores it higher and it touches no window edge that is not the image's edge."""
        h, w = roi.shape
        half = fraction * max(h, w) / 2
        x, y = click[0], click[1]
        x0, x1 = int(max(0, x - half)), int(min(w, x + half + 1))
        y0, y1 = int(max(0, y - half)), int(min(h, y + half + 1))
        if (x0, y0, x1, y1) == (0, 0, w, h):
            return mask, score
        prob, win_score = self._run(image, roi, [click], None, (x0, y0, x1, y1), self.max_side, key[0], key[1])
        win = (prob > self._cut) & roi[y0:y1, x0:x1]
        cut_off = ((x0 > 0 and win[:, 0].any()) or (y0 > 0 and win[0].any()) or (x1 < w and win[:, -1].any())
                   or (y1 < h and win[-1].any()))
        if cut_off or not win[int(y) - y0, int(x) - x0]:
            return mask, score
        out = np.zeros((h, w), bool)
        out[y0:y1, x0:x1] = win
        self._note(out, win_score, click)
        if win_score <= score:
            return mask, score
        return out, win_score

    def _large_object_view(self, image: np.ndarray, roi: np.ndarray, click: Click, mask: np.ndarray, score: float,
                           key: tuple[str, str]) -> tuple[np.ndarray, float]:
        """The first click again on the whole image at `large_object_side`; a large mask there that holds the click
        wins, refined with itself as the previous mask at each of `large_object_refine_sides` (see __init__)."""
        h, w = roi.shape
        big = self.large_object_fraction * max(1, int(roi.sum()))
        if not self.large_object_side or self.large_object_side >= self.max_side:
            return mask, score
        prob, small_score = self._run(image, roi, [click], None, (0, 0, w, h), self.large_object_side, key[0], key[1])
        small = (prob > self._cut) & roi
        self._note(small, small_score, click)
        cx, cy = int(click[0]), int(click[1])
        if small.sum() < big or not small[cy, cx]:
            return mask, score
        for side in self.large_object_refine_sides:
            prob, refined_score = self._run(image, roi, [click], small, (0, 0, w, h), side, key[0], key[1])
            refined = (prob > self._cut) & roi
            if not refined[cy, cx]:
                break  # the refinement lost the clicked object: keep the last mask that held it
            small, small_score = refined, refined_score
            self._note(small, small_score, click)
        return small, small_score

    def _small_object_refine(self, image: np.ndarray, roi: np.ndarray, click: Click, mask: np.ndarray,
                             score: float, key: tuple[str, str]) -> tuple[np.ndarray, float]:
        """The first click again in the zoom window around a small first mask, with that mask as the previous
        mask (see __init__)."""
        h, w = roi.shape
        if not mask.any() or mask.sum() >= self.large_object_fraction * max(1, int(roi.sum())):
            return mask, score
        x0, y0, x1, y1 = window = self._zoom_window(mask, [click], (h, w), self.zoom_min_fraction)
        prob, refined_score = self._run(image, roi, [click], mask, window, self.max_side, key[0], key[1])
        refined = np.zeros_like(mask)
        refined[y0:y1, x0:x1] = (prob > self._cut) & roi[y0:y1, x0:x1]
        if not refined[int(click[1]), int(click[0])]:
            return mask, score
        self._note(refined, refined_score, click)
        return refined, refined_score

    # ---- public API ----
    def predict(self, image: np.ndarray, clicks: Sequence[Click], roi: np.ndarray | None = None,
                reading: int = 0, preview: PreviewCallback | None = None) -> Prediction:
        """The segment under the clicks, inside `roi`. clicks: [(x, y, positive)] in full-image pixels, the
        first positive; later ones correct the mask (positive adds the region under it, negative removes).
        `reading`: which of the first click's readings (Prediction.readings) the mask builds on; 0 is the
        default, an index past the last one means the last. `preview(mask, score)`: called (in this thread)
        with the first net pass's answer when a new first click still has its other views and refinements to
        run, so a window can show it at once; the mask is the caller's own, at full resolution."""
        t0 = time.perf_counter()
        image = as_rgb(image)
        h, w = image.shape[:2]
        roi = self._check_roi(roi, (h, w))
        clicks = self._check_clicks(clicks, (h, w))
        fx, fy, _ = clicks[0]
        if not roi[int(fy), int(fx)]:
            # The first click is on a pixel the segment may not contain (already labelled, say): nothing to find.
            return Prediction(np.zeros((h, w), bool), 0.0, time.perf_counter() - t0)
        key = (_fingerprint(image), _fingerprint(roi))
        if self.work_side > 0 and max(h, w) > self.work_side:
            work_image, work_roi = self._working_copy(image, roi, key)
            sh, sw = work_roi.shape
            fx, fy = sw / w, sh / h
            work_clicks = [(min(sw - 1.0, max(0.0, (x + 0.5) * fx - 0.5)),
                            min(sh - 1.0, max(0.0, (y + 0.5) * fy - 0.5)), p) for x, y, p in clicks]
            def full(m: np.ndarray) -> np.ndarray:
                # Linear interpolation of the 0/255 mask then the midpoint: a smooth outline, not blocks.
                return (cv2.resize(m.view(np.uint8) * np.uint8(255), (w, h), interpolation=cv2.INTER_LINEAR)
                        > 127) & roi

            work_preview = None if preview is None else (lambda m, sc: preview(full(m), sc))
            mask, score, readings, reading = self._predict_chain(work_image, work_roi, work_clicks, reading, key,
                                                                 work_preview)
            mask_full = full(mask)
            readings_full = tuple(mask_full if m is mask else full(m) for m, _ in readings)
            return Prediction(mask_full, score, time.perf_counter() - t0, readings_full, reading)
        own_preview = None if preview is None else (lambda m, sc: preview(m.copy(), sc))
        mask, score, readings, reading = self._predict_chain(image, roi, clicks, reading, key, own_preview)
        return Prediction(mask.copy(), score, time.perf_counter() - t0, tuple(m.copy() for m, _ in readings), reading)

    def _working_copy(self, image: np.ndarray, roi: np.ndarray, key: tuple[str, str]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The image and ROI scaled to `work_side`, cached while they stay the same. A scaled ROI pixel is in
        the ROI when any of the pixels it covers is, so a click on a sliver of the ROI still lands inside it
        (the masks are cut to the full-resolution ROI afterwards)."""
        h, w = roi.shape
        scale = self.work_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if self._work_image is None or self._work_image[0] != key[0]:
            self._work_image = (key[0], cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        if self._work_roi is None or self._work_roi[0] != (key[1], roi.shape):
            small = cv2.resize(roi.view(np.uint8) * np.uint8(255), size, interpolation=cv2.INTER_AREA) > 0
            self._work_roi = ((key[1], roi.shape), small)
        return self._work_image[1], self._work_roi[1]

    def _predict_chain(self, image: np.ndarray, roi: np.ndarray, clicks: list[Click], reading: int,
                       key: tuple[str, str], preview: PreviewCallback | None = None
                       ) -> tuple[np.ndarray, float, list[tuple[np.ndarray, float]], int]:
        """predict() on the image as given: (mask, score, readings, reading). The masks are the caches' own
        arrays: callers copy them."""
        readings = self._first_click_readings(image, roi, clicks[0], key, preview)
        reading = max(0, min(int(reading), len(readings) - 1))
        start, mask, score = 0, None, 0.0
        if (self._last is not None and self._last[0] == (key, reading)
                and tuple(self._last[1]) == tuple(clicks[:len(self._last[1])])):
            start, mask, score = len(self._last[1]), self._last[2], self._last[3]
            if start == len(clicks):
                return mask, score, readings, reading
        h, w = roi.shape
        for k in range(start + 1, len(clicks) + 1):
            if mask is None:
                mask, score = readings[reading]
            else:
                window = self._zoom_window(mask, clicks[:k], (h, w), self.zoom_min_fraction)
                prob, score = self._run(image, roi, clicks[:k], mask, window, self.max_side, key[0], key[1])
                x0, y0, x1, y1 = window
                new_window = (prob > self._cut) & roi[y0:y1, x0:x1]
                apply = self._apply_correction if self.local_corrections else self._apply_window
                corrected = apply(mask, new_window, clicks[k - 1], roi, window)
                if not clicks[k - 1][2] and self.drop_detached_parts:
                    corrected = self._drop_detached_part(mask, corrected, clicks[:k], window)
                mask = corrected
        self._last = ((key, reading), list(clicks), mask, score)
        return mask, score, readings, reading

    def _first_click_readings(self, image: np.ndarray, roi: np.ndarray, click: Click, key: tuple[str, str],
                              preview: PreviewCallback | None = None) -> list[tuple[np.ndarray, float]]:
        """[(mask, score)] of the first click: the default (all the first-click rules below), then up to
        `max_readings` - 1 distinct masks from the other views it ran, highest score first."""
        if self._readings is not None and self._readings[0] == (key, tuple(click)):
            return self._readings[1]
        h, w = roi.shape
        self._seen = []
        try:
            prob, score = self._run(image, roi, [click], None, (0, 0, w, h), self.max_side, key[0], key[1])
            mask = (prob > self._cut) & roi
            self._note(mask, score, click)
            if preview is not None:
                preview(mask, score)
            mask, score = self._large_object_view(image, roi, click, mask, score, key)
            if self.refine_first != "off" and mask.any():
                mask, score = self._refine(image, roi, [click], mask, score, key)
            for fraction in self.first_click_windows:
                if self.first_click_confident < 1 and score >= self.first_click_confident:
                    break
                mask, score = self._first_click_window(image, roi, click, fraction, mask, score, key)
            if self.small_object_refine:
                mask, score = self._small_object_refine(image, roi, click, mask, score, key)
            seen = self._seen
        finally:
            self._seen = None
        readings = [(mask, score)]
        for m, sc in sorted(seen, key=lambda ms: -ms[1]):
            if len(readings) >= self.max_readings:
                break
            if all(_iou(m, r) < self.reading_overlap for r, _ in readings):
                readings.append((m, sc))
        self._readings = ((key, tuple(click)), readings)
        return readings

    def _note(self, mask: np.ndarray, score: float, click: Click) -> None:
        """Keep a view's mask of the first click as a possible reading, if it holds the click."""
        if self._seen is not None and mask[int(click[1]), int(click[0])]:
            self._seen.append((mask, float(score)))

    def segment_image(self, image: np.ndarray, roi: np.ndarray | None = None,
                      progress: ProgressCallback | None = None, max_segments: int = 50,
                      min_area_fraction: float = 0.004, min_pointer_radius: float = 3.0,
                      min_score: float = 0.3, miss_disk_fraction: float = 0.5,
                      max_misses_in_a_row: int | None = 5, refine_passes: int = 2) -> np.ndarray:
        """Region-by-region segmentation (the seed's Figure 2): click the interior-most point of what is still
        unlabelled, take the segment the net returns there inside the unlabelled remainder, repeat.
        HxW int32 label map, 0 = unassigned. `progress(fraction_done)` may return False to cancel; the
        segments found so far are returned. Pointers go only where a disk of `min_pointer_radius` internal
        pixels fits in what is left: the slivers between segments hold no segment worth a net pass. A segment
        whose predicted IoU (the net's score) is below `min_score` is treated as a miss: its pixels stay
        unassigned, for the person to click. After a miss, no later pointer goes within `miss_disk_fraction`
        of the missed pointer's distance to the edge of what is left: a miss at the centre of a large unlabelled
        area then still leaves the smaller regions inside it reachable (with the whole inscribed disk, 1.0,
        116 of the 293 held-out CamVid segments of 0.4-5% of the image never got a pointer). After
        `max_misses_in_a_row` misses in a row the search stops (None: never): what is left then is mostly
        ground the net cannot split, and segments found after long runs of misses were nearly all false
        positives (held-out CamVid frames: with 5, PQ 0.114 -> 0.115, false positives 327 -> 283,
        2 of 190 true positives lost, 31% less time). Each segment's answer goes back to the net
        `refine_passes` times as the previous mask, as a click's first mask does, and is gated on the first pass's
        score (0 -> 1 -> 2 -> 3 passes: BSDS validation covering 0.510 / 0.519 / 0.526 / 0.529, held-out CamVid
        frames PQ 0.118 / 0.121 / 0.124 / 0.125, false positives 289 / 256 / 243 / 226, for about 1 / 1.7 / 2.4 / 3.2
        times the time; 2 takes most of the gain). The defaults were
        chosen with bench/tune_full_image.py on the CamVid training frames the trainer holds out (PQ 0.077 ->
        0.091, false positives 1125 -> 243; miss_disk_fraction 1.0 -> 0.5: 0.104 -> 0.114)."""
        if refine_passes < 0:
            raise ValueError(f"refine_passes must be at least 0, got {refine_passes!r}")
        if not 0 < miss_disk_fraction <= 1:
            raise ValueError(f"miss_disk_fraction must be in (0, 1], got {miss_disk_fraction!r}")
        if max_misses_in_a_row is not None and max_misses_in_a_row < 1:
            raise ValueError(f"max_misses_in_a_row must be at least 1 or None, got {max_misses_in_a_row!r}")
        image = as_rgb(image)
        h, w = image.shape[:2]
        roi = self._check_roi(roi, (h, w))
        side = min(self.full_image_side, max(h, w)) if max(h, w) < 64 else self.full_image_side
        scale = side / max(h, w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        roi_small = cv2.resize(roi.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
        whole = (0, 0, sw, sh)  # every pass runs on the whole small image
        small_key = "segment_image" + _fingerprint(small)  # lets _run reuse the guide filter's statistics
        remaining = roi_small.copy()      # not yet assigned to a segment
        candidates = roi_small.copy()     # where a next pointer may still go
        total = max(1, int(roi_small.sum()))
        min_area = max(4, int(min_area_fraction * sw * sh))
        segments: list[tuple[np.ndarray, np.ndarray]] = []  # (probabilities, mask) at small res
        cancelled = False
        runs, max_runs = 0, 3 * max_segments  # bounds the time on a fragmented ROI, where misses remove little
        misses_in_a_row = 0
        min_radius = min(min_pointer_radius, 0.1 * min(sw, sh))  # tiny images still get a pointer
        while len(segments) < max_segments and runs < max_runs and candidates.sum() >= min_area:
            dist = cv2.distanceTransform(np.pad(candidates.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
            py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
            if dist[py, px] < min_radius:
                break
            runs += 1
            pointer = [(float(px), float(py), True)]
            prob, score = self._run(small, remaining, pointer, None, whole, side, small_key)
            # The answer fed back as the previous mask, as a click's first mask is: its outline settles on the
            # region. The gate keeps the first pass's score: the net rates its own refined answers higher, and
            # gating on that let through more false segments (held-out CamVid frames 289 -> 348).
            for _ in range(refine_passes if score >= min_score else 0):
                previous = (prob > self._cut) & remaining
                if not previous.any():
                    break
                prob, _ = self._run(small, remaining, pointer, previous, whole, side, small_key)
            mask = (prob > self._cut) & remaining
            if mask.sum() >= min_area and mask[py, px] and score >= min_score:
                segments.append((prob, mask))
                remaining &= ~mask
                candidates &= ~mask
                misses_in_a_row = 0
            else:
                misses_in_a_row += 1
                # Nothing usable here: stop pointing at this spot or at the small piece the net found there;
                # leave those pixels unassigned.
                if mask[py, px]:
                    candidates &= ~mask
                r = max(2, int(np.ceil(miss_disk_fraction * dist[py, px])))
                cv2.circle(candidates.view(np.uint8), (int(px), int(py)), r, 0, -1)
                if max_misses_in_a_row is not None and misses_in_a_row >= max_misses_in_a_row:
                    break
            if progress is not None and progress(1.0 - candidates.sum() / total) is False:
                cancelled = True
                break
        labels = self._labels_at_full_res(segments, roi, (h, w), (sw, sh), self._cut)
        if progress is not None and not cancelled:
            progress(1.0)
        return labels

    @staticmethod
    def _labels_at_full_res(segments, roi: np.ndarray, shape: tuple[int, int], small_size: tuple[int, int],
                            cut: int = 127) -> np.ndarray:
        """Each segment's probabilities upsampled inside its bounding box, so boundaries are smooth at full
        resolution without ever holding a full-resolution map per segment. Where two segments meet at the small
        size, both fall under the cut for a pixel or two between them at full size: such a pixel, whose
        small-size cell belongs to a segment, takes that segment. Those slivers left 5.7% of the BSDS validation
        scenes unlabelled (4.1% filled; covering 0.5065 -> 0.5078) and 5.2% of CamVid frames (4.1%; held-out
        frames' PQ 0.1132 -> 0.1140)."""
        h, w = shape
        sw, sh = small_size
        labels = np.zeros((h, w), np.int32)
        small = np.zeros((sh, sw), np.uint16 if len(segments) < 65535 else np.int32)
        for k, (_, mask) in enumerate(segments, 1):
            small[mask] = k  # the masks are disjoint: each took only what was still unassigned
        fx, fy = w / sw, h / sh
        for k, (prob, mask) in enumerate(segments, 1):
            ys, xs = np.nonzero(mask)
            x0, x1 = max(0, xs.min() - 1), min(sw, xs.max() + 2)
            y0, y1 = max(0, ys.min() - 1), min(sh, ys.max() + 2)
            X0, X1 = int(round(x0 * fx)), min(w, int(round(x1 * fx)))
            Y0, Y1 = int(round(y0 * fy)), min(h, int(round(y1 * fy)))
            if X1 <= X0 or Y1 <= Y0:
                continue
            # Resizing only the box keeps every temporary at the size of one segment's box, in bytes.
            crop = np.where(mask[y0:y1, x0:x1], prob[y0:y1, x0:x1], 0).astype(np.uint8)
            up = cv2.resize(crop, (X1 - X0, Y1 - Y0), interpolation=cv2.INTER_LINEAR)
            sel = (up > cut) & (labels[Y0:Y1, X0:X1] == 0) & roi[Y0:Y1, X0:X1]
            labels[Y0:Y1, X0:X1][sel] = k
        if segments:
            rows = np.minimum(np.arange(h) * sh // h, sh - 1)
            cols = np.minimum(np.arange(w) * sw // w, sw - 1)
            for y0 in range(0, h, 512):  # in bands: no full-size temporaries (24 MP: +67 MB at once)
                band = labels[y0:y0 + 512]
                cells = small[rows[y0:y0 + 512]][:, cols]
                sliver = (band == 0) & (cells > 0) & roi[y0:y0 + 512]
                band[sliver] = cells[sliver]
        return labels

    @property
    def _cut(self) -> int:
        """The threshold on the uint8 probability scale: mask = prob > _cut."""
        return int(round(255 * self.threshold)) - 1  # 0.5 -> 127, as the sigmoid's > 0.5 on uint8

    # ---- input checks ----
    @staticmethod
    def _check_roi(roi: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
        if roi is None:
            return np.ones(shape, bool)
        roi = np.asarray(roi)
        if roi.shape != shape:
            raise ValueError(f"roi must have the image's shape {shape}, got {roi.shape}")
        return roi.astype(bool, copy=False)

    @staticmethod
    def _check_clicks(clicks: Sequence[Click], shape: tuple[int, int]) -> list[Click]:
        h, w = shape
        if not clicks:
            raise ValueError("at least one click is needed")
        out = []
        for c in clicks:
            if len(c) != 3:
                raise ValueError(f"a click is (x, y, positive), got {c!r}")
            x, y, p = float(c[0]), float(c[1]), bool(c[2])
            if not (0 <= x < w and 0 <= y < h):
                raise ValueError(f"click ({x:g}, {y:g}) is outside the {w}x{h} image")
            out.append((x, y, p))
        if not out[0][2]:
            raise ValueError("the first click must be positive")
        return out
