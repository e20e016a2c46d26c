"""Time `segment_stats` (each segment's area and box, computed for every image a COCO export writes) on large
label maps, against the pixel sort it replaced, in one process and interleaved so a busy CPU
slows both alike. Also times a whole COCO panoptic export of one such image.

    python bench/export_stats.py [--megapixels 12] [--segments 40] [--repeat 5] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def pixel_sort_stats(labels: np.ndarray) -> dict:
    """segment_stats as it was before: every labelled pixel sorted by id (the reference)."""
    w = labels.shape[1]
    flat = labels.ravel()
    nz = np.flatnonzero(flat)
    if nz.size == 0:
        return {}
    ids = flat[nz]
    order = np.argsort(ids, kind="stable")
    ids, nz = ids[order], nz[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ys, xs = np.divmod(nz, w)
    areas = np.diff(np.r_[starts, ids.size])
    y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
    return {int(ids[s]): (int(a), [int(a0), int(b0), int(a1 - a0 + 1), int(b1 - b0 + 1)])
            for s, a, a0, b0, a1, b1 in zip(starts, areas, x0, y0, x1, y1)}


def label_map(megapixels: float, segments: int, seed: int = 0) -> np.ndarray:
    """A 4:3 map of overlapping discs (later ones on top), like a photo labelled segment by segment."""
    w = int(round(np.sqrt(megapixels * 1e6 * 4 / 3)))
    h = int(round(w * 3 / 4))
    rng = np.random.default_rng(seed)
    labels = np.zeros((h, w), np.int32)
    for k in range(1, segments + 1):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(labels, centre, int(rng.integers(h // 60 + 1, h // 5 + 2)), k, -1)
    return labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--segments", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)

    from annotator.coco_io import export_coco_panoptic, segment_stats
    from annotator.document import Project

    labels = label_map(args.megapixels, args.segments)
    assert segment_stats(labels) == pixel_sort_stats(labels), "the two ways disagree"
    times: dict[str, list[float]] = {"segment_stats (runs)": [], "pixel sort (before)": [], "whole export": []}
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        cv2.imwrite(str(images / "big.jpg"), np.full((*labels.shape, 3), 128, np.uint8))
        project = Project.new(images, Path(tmp) / "project")
        category = project.categories[0].id if project.categories else project.add_category("object")
        for k in np.unique(labels)[1:]:
            project.add_segment(0, labels == k, category, overwrite=True)  # the same map as `labels`
        for r in range(args.repeat):
            for name, fn in (("segment_stats (runs)", lambda: segment_stats(labels)),
                             ("pixel sort (before)", lambda: pixel_sort_stats(labels)),
                             ("whole export", lambda: export_coco_panoptic(project, Path(tmp) / f"out{r}"))):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        project.close()
    h, w = labels.shape
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{w}x{h} ({w * h / 1e6:.1f} MP), {int(labels.max())} segments, median of {args.repeat}:")
    for k, v in med.items():
        print(f"  {k:<24}{v * 1000:>8.0f} ms")
    print(f"  pixel sort / runs: {med['pixel sort (before)'] / med['segment_stats (runs)']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": [w, h], "segments": int(labels.max()),
                                               "median_s": med, "times_s": times}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
