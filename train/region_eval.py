"""Full-image evaluation on sources with several human segmentations per image (BSDS), the benchmark's way.

`train.evaluate full` switches to this when its source offers `human_segmentations(image_id)` (train.readers
.BsdsReader, also inside the evaluator's subsets): one item per image instead of one per (image, person); each
method segments the image once, and that label map is scored against every person's segmentation with the
BSDS region measures (train.region_metrics: covering, PRI, VoI) and with class-agnostic PQ (counts added over
every person, as the per-person items would have added them).

The peer is scikit-image's Felzenszwalb-Huttenlocher graph segmentation at its best setting, as the field
compares with it: a sweep over scale, sigma and min_size on the same images, the data-set figures of every
setting reported, and the best one (by covering; also the best by PRI and by VoI, each chosen on its own as the
benchmark's ODS does).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from .region_metrics import panoptic_quality, pq_from_counts, region_scores, summarize_region_scores

# scale: the range its users sweep (the paper's examples use 300-1000 on 320x240 images); sigma: the paper's 0.5
# and scikit-image's default 0.8; min_size: scikit-image's default 20 and the 50 of its gallery example.
FELZENSZWALB_SCALES = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000)
FELZENSZWALB_SIGMAS = (0.5, 0.8)
FELZENSZWALB_MIN_SIZES = (20, 50)


@dataclasses.dataclass
class Scene:
    image: np.ndarray            # HxWx3 uint8 RGB
    humans: list[np.ndarray]     # each person's HxW label map
    name: str


class HumanScenes:
    """One item per image of a reader with `human_segmentations(image_id)`: the image with every person's
    label map. `min_area`: the reader's smallest segment (smaller regions are ignore pixels in PQ)."""

    def __init__(self, reader, ids: Sequence[str]):
        self.reader = reader
        self.ids = list(ids)
        self.names = list(self.ids)
        self.min_area = int(getattr(reader, "min_area", 0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Scene:
        image, humans = self.reader.human_segmentations(self.ids[i])
        return Scene(image, list(humans), self.ids[i])


def human_scenes(reader) -> HumanScenes | None:
    """The images of `reader` (unwrapping the evaluator's subsets, `.reader` + `.indices`) with all their human
    segmentations, in first-seen order; None if the source has one label map per image."""
    indices = None
    while not hasattr(reader, "human_segmentations") and hasattr(reader, "reader") and hasattr(reader, "indices"):
        inner = list(reader.indices)
        indices = inner if indices is None else [inner[j] for j in indices]
        reader = reader.reader
    if not hasattr(reader, "human_segmentations"):
        return None
    if indices is None:
        return HumanScenes(reader, list(reader.ids))
    seen: dict[str, None] = {}
    for j in indices:
        seen.setdefault(reader.image_ids[j], None)
    return HumanScenes(reader, list(seen))


def label_segments(label: np.ndarray, min_area: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(segments, ignore) of one human label map as the reader gives them: a segment per label, label 0 and
    regions under `min_area` pixels ignored."""
    values, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(label.shape)
    ignore = np.zeros(label.shape, bool)
    segments = []
    for k, v in enumerate(values):
        m = inverse == k
        if v == 0 or counts[k] < min_area:
            ignore |= m
        else:
            segments.append(m)
    return segments, ignore


def score_labels(labels: np.ndarray, scene: Scene, min_area: int) -> dict:
    """PQ counts against every person (added) and the region measures of one machine label map."""
    tp = fp = fn = 0
    iou_sum = 0.0
    best: list[float] = []
    n_gt = 0
    for human in scene.humans:
        r = panoptic_quality(labels, *label_segments(human, min_area))
        tp, fp, fn, iou_sum = tp + r["tp"], fp + r["fp"], fn + r["fn"], iou_sum + r["iou_sum"]
        best += r["best_ious"]
        n_gt += r["n_gt"]
    out = {"tp": tp, "fp": fp, "fn": fn, "iou_sum": iou_sum, "best_ious": best, "n_gt": n_gt,
           "n_pred": int(len(np.unique(labels[labels > 0]))),
           "mean_best_iou": float(np.mean(best)) if best else float("nan"),
           "regions": region_scores(labels, scene.humans)}
    out.update(pq_from_counts(iou_sum, tp, fp, fn))
    return out


def eval_full_regions(scene: Scene, fully_labelled: bool, methods: list, rng, args, min_area: int = 0) -> dict:
    """The evaluator's per-image step for a scene: each method segments it once."""
    rec = {"n_humans": len(scene.humans)}
    for m in methods:
        t0 = time.perf_counter()
        labels = np.asarray(m.segment_image(scene.image))
        seconds = time.perf_counter() - t0
        rec[m.name] = score_labels(labels, scene, min_area)
        rec[m.name]["seconds"] = seconds
    return rec


def felzenszwalb_grid() -> list[dict]:
    return [{"scale": s, "sigma": g, "min_size": m} for g in FELZENSZWALB_SIGMAS for m in FELZENSZWALB_MIN_SIZES
            for s in FELZENSZWALB_SCALES]


def felzenszwalb_sweep(scenes: HumanScenes, n: int, grid: list[dict] | None = None, quiet: bool = True) -> dict:
    """Felzenszwalb on the first `n` scenes at every setting of `grid`: data-set region figures per setting and
    the best settings. Each image is read once and segmented at every setting."""
    import sys

    from skimage.segmentation import felzenszwalb

    grid = felzenszwalb_grid() if grid is None else grid
    per_setting: list[list[dict]] = [[] for _ in grid]
    seconds = [0.0] * len(grid)
    for i in range(n):
        scene = scenes[i]
        for k, p in enumerate(grid):
            t0 = time.perf_counter()
            labels = felzenszwalb(scene.image, scale=p["scale"], sigma=p["sigma"], min_size=p["min_size"],
                                  channel_axis=-1)
            seconds[k] += time.perf_counter() - t0
            per_setting[k].append(region_scores(labels, scene.humans))
        if not quiet:
            print(f"[felzenszwalb {i + 1}/{n}] {scene.name}", file=sys.stderr, flush=True)
    results = []
    for k, p in enumerate(grid):
        s = summarize_region_scores(per_setting[k])
        s.update(p)
        s["seconds_per_image"] = seconds[k] / max(1, n)
        results.append(s)

    def best(key, sign):
        ok = [r for r in results if not np.isnan(r[key])]
        return dict(max(ok, key=lambda r: sign * r[key])) if ok else None

    return {"grid": results, "best": best("covering", 1), "best_pri": best("pri", 1), "best_voi": best("voi", -1),
            "n_images": n}


def region_report(per_image: list[dict], names: Sequence[str], scenes: HumanScenes, n: int,
                  with_felzenszwalb: bool = True, quiet: bool = True) -> dict:
    """The "regions" block of the evaluator's result: each method's data-set region figures and the sweep."""
    methods = {name: summarize_region_scores([im[name]["regions"] for im in per_image]) for name in names}
    for name in names:
        methods[name]["seconds_per_image"] = float(np.mean([im[name]["seconds"] for im in per_image])) \
            if per_image else float("nan")
    return {"measures": "BSDS region measures (train/region_metrics.py): covering of the human segmentations, "
                        "accumulated over every person and pixel-weighted over images; PRI and VoI (bits) the mean "
                        "over images of the mean over people; machine label 0 is one region",
            "n_images": len(per_image),
            "humans_per_image": float(np.mean([im["n_humans"] for im in per_image])) if per_image else 0.0,
            "methods": methods,
            "felzenszwalb": felzenszwalb_sweep(scenes, n, quiet=quiet) if with_felzenszwalb else None}


def format_regions(regions: dict) -> str:
    lines = [f"region measures, {regions['n_images']} images, {regions['humans_per_image']:.1f} human "
             f"segmentations each (covering pixel-weighted; VoI in bits, lower is better)",
             f"{'method':<60}{'covering':>10}{'PRI':>8}{'VoI':>8}{'regions':>9}{'s/image':>9}"]

    def row(name, s):
        return (f"{name:<60}{s['covering']:>10.3f}{s['pri']:>8.3f}{s['voi']:>8.3f}"
                f"{s.get('n_regions_mean', float('nan')):>9.1f}{s.get('seconds_per_image', float('nan')):>9.2f}")

    for name, s in regions["methods"].items():
        lines.append(row(name, s))
    fz = regions.get("felzenszwalb")
    if fz and fz["best"]:
        for key, what in (("best", "covering"), ("best_pri", "PRI"), ("best_voi", "VoI")):
            b = fz[key]
            lines.append(row(f"felzenszwalb best {what} (scale {b['scale']:g}, sigma {b['sigma']:g}, "
                             f"min {b['min_size']})", b))
        lines.append(f"(felzenszwalb: {len(fz['grid'])} settings on the same {fz['n_images']} images)")
    return "\n".join(lines)
