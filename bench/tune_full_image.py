"""Choose the settings of `Segmenter.segment_image` (the annotator's "Auto-segment" and `main.py auto`) on a
held-out split, never on a benchmark.

    python bench/tune_full_image.py --data semantic:../shared/data/camvid/train --json runs/bench/tune_full.json

Runs every combination of the grid on the files the trainer holds out of `--data` (its stable split by file
name, the same as `python -m train.evaluate --held-out`) and prints class-agnostic PQ / SQ / RQ, TP / FP / FN and
seconds per image for each, best PQ first. Always the held-out split: a grid searched on a benchmark would tune to
it. The chosen row then goes into `Segmenter`'s defaults and is measured once on CamVid val with
`python -m train.evaluate full`.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train.evaluate import load_segmenter, panoptic_quality, parse_segmenter_options, pq_from_counts  # noqa: E402
from train.sample import DataError  # noqa: E402
from train.trainer import TrainConfig, _is_val, open_source  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _max_misses(text: str) -> list[int | None]:
    return [None if v.strip().lower() == "none" else int(v) for v in text.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="semantic:../shared/data/camvid/train",
                   help="a fully labelled source (semantic: or coco:); its held-out split is used")
    p.add_argument("--weights", help="net weights (default: the bundled ones)")
    p.add_argument("--random-init", action="store_true", help="an untrained net (tests)")
    p.add_argument("--side", default="320", help="comma-separated internal long sides")
    p.add_argument("--min-pointer-radius", default="3", help="comma-separated values")
    p.add_argument("--min-area-fraction", default="0.001", help="comma-separated values")
    p.add_argument("--min-score", default="0", help="comma-separated values")
    p.add_argument("--miss-disk-fraction", default="0.5", help="comma-separated values")
    p.add_argument("--max-misses", default="5",
                   help="comma-separated values of max_misses_in_a_row; 'none' for no limit")
    p.add_argument("--limit", type=int, help="only the first N held-out images")
    p.add_argument("--segmenter-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Segmenter keyword argument for every row, e.g. guided_radius=4 (repeatable)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the table here")
    a = p.parse_args(argv)
    try:
        a.segmenter_options = parse_segmenter_options(a.segmenter_option)
    except ValueError as exc:
        p.error(str(exc))
    return a


def tune(args: argparse.Namespace) -> list[dict]:
    import torch

    torch.set_num_threads(max(1, args.threads))
    cv2.setNumThreads(max(1, args.threads))
    reader, _, fully_labelled = open_source(args.data)
    if not fully_labelled:
        raise DataError(f"{args.data}: needs full label maps (semantic: or coco: data)")
    names = getattr(reader, "names", None) or [str(i) for i in range(len(reader))]
    held_out = [i for i, n in enumerate(names) if _is_val(n, TrainConfig.val_fraction)]
    if args.limit is not None:
        held_out = held_out[:args.limit]
    if not held_out:
        raise DataError(f"{args.data}: no file falls in the trainer's held-out split")
    samples = [reader[i] for i in held_out]
    segmenter, _ = load_segmenter(args.weights, args.random_init, options=args.segmenter_options)
    grid = itertools.product([int(v) for v in _floats(args.side)], _floats(args.min_pointer_radius),
                             _floats(args.min_area_fraction), _floats(args.min_score),
                             _floats(args.miss_disk_fraction), _max_misses(args.max_misses))
    rows = []
    for side, radius, area, score, miss, max_misses in grid:
        segmenter.full_image_side = side
        counts = {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}
        seconds = 0.0
        for s in samples:
            t0 = time.perf_counter()
            labels = segmenter.segment_image(s.image, min_area_fraction=area, min_pointer_radius=radius,
                                             min_score=score, miss_disk_fraction=miss,
                                             max_misses_in_a_row=max_misses)
            seconds += time.perf_counter() - t0
            r = panoptic_quality(labels, s.segments, s.ignore)
            for k in counts:
                counts[k] += r[k]
        row = {"side": side, "min_pointer_radius": radius, "min_area_fraction": area, "min_score": score,
               "miss_disk_fraction": miss, "max_misses_in_a_row": max_misses,
               **pq_from_counts(counts["iou_sum"], counts["tp"], counts["fp"], counts["fn"]), **counts,
               "images": len(samples), "seconds_per_image": seconds / len(samples)}
        rows.append(row)
        print(_fmt(row), file=sys.stderr, flush=True)
    rows.sort(key=lambda r: -r["pq"])
    return rows


def _fmt(r: dict) -> str:
    return (f"side {r['side']:4d}  radius {r['min_pointer_radius']:4g}  area {r['min_area_fraction']:6g}  "
            f"score {r['min_score']:4g}  miss disk {r['miss_disk_fraction']:4g}  "
            f"misses {str(r['max_misses_in_a_row']):>4s}  PQ {r['pq']:.3f}  SQ {r['sq']:.3f}  RQ {r['rq']:.3f}  "
            f"TP {r['tp']:4d}  FP {r['fp']:4d}  FN {r['fn']:4d}  {r['seconds_per_image']:.2f} s/image")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rows = tune(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"held-out split of {args.data}, best PQ first:")
    for r in rows:
        print(_fmt(r))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"data": args.data, "command": " ".join(sys.argv),
                                               "segmenter_options": args.segmenter_options,
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
