"""Choose the settings of `Segmenter.segment_image` (the annotator's "Auto-segment" and `main.py auto`) on a
held-out split, never on a benchmark.

    python bench/tune_full_image.py --data semantic:../shared/data/camvid/train --json runs/bench/tune_full.json
    python bench/tune_full_image.py --data bsds:../shared/data/bsds --side 320,384,448

Runs every combination of the grid. On a source with one label map per image (semantic:, coco:) it takes the
files the trainer holds out of `--data` (its stable split by file name, the same as `python -m train.evaluate
--held-out`) and prints class-agnostic PQ / SQ / RQ, TP / FP / FN, best PQ first. On a source with several
people's segmentations per image (bsds:) it takes the images of the fixed validation split (train/val_split.json,
as `python -m train.evaluate full --split val`) and prints the BSDS region measures against every person
(covering, PRI, VoI), best covering first. Always a held-out split: a grid searched on a benchmark would tune to
it. The chosen row then goes into `Segmenter`'s defaults and is measured once with `python -m train.evaluate full`.
Grid defaults are segment_image's own defaults, so a one-axis sweep varies only that axis.
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

from train.evaluate import (held_out_subset, load_segmenter, panoptic_quality, parse_segmenter_options,  # noqa: E402
                            pq_from_counts)
from train.region_eval import human_scenes  # noqa: E402
from train.region_metrics import region_scores  # noqa: E402
from train.sample import DataError  # noqa: E402
from train.splits import held_out_names  # noqa: E402
from train.trainer import TrainConfig, _is_val, open_source  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _max_misses(text: str) -> list[int | None]:
    return [None if v.strip().lower() == "none" else int(v) for v in text.split(",")]


def _default(name: str) -> str:
    import inspect

    from model.segmenter import Segmenter

    if name == "side":
        return str(inspect.signature(Segmenter.__init__).parameters["full_image_side"].default)
    value = inspect.signature(Segmenter.segment_image).parameters[name].default
    return "none" if value is None else f"{value:g}"


# (grid axis = segment_image keyword, command-line option, parser)
AXES = [("min_pointer_radius", "--min-pointer-radius", _floats),
        ("min_area_fraction", "--min-area-fraction", _floats),
        ("min_score", "--min-score", _floats),
        ("miss_disk_fraction", "--miss-disk-fraction", _floats),
        ("max_misses_in_a_row", "--max-misses", _max_misses),
        ("refine_passes", "--refine-passes", _ints)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="semantic:../shared/data/camvid/train",
                   help="a fully labelled source (semantic:, coco: or bsds:); its held-out split is used")
    p.add_argument("--weights", help="net weights (default: the bundled ones)")
    p.add_argument("--random-init", action="store_true", help="an untrained net (tests)")
    p.add_argument("--side", default=_default("side"), help="comma-separated internal long sides")
    for name, flag, _ in AXES:
        p.add_argument(flag, dest=name, default=_default(name),
                       help=f"comma-separated values of segment_image's {name}"
                            + ("; 'none' for no limit" if name == "max_misses_in_a_row" else ""))
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
        raise DataError(f"{args.data}: needs full label maps (semantic:, coco: or bsds: data)")
    scenes = None
    if hasattr(reader, "human_segmentations"):
        scenes = human_scenes(held_out_subset(reader, held_out_names()))
        if scenes is None or len(scenes) == 0:
            raise DataError(f"{args.data}: no image of this source is in the validation split (train/val_split.json)")
        samples = [scenes[i] for i in range(len(scenes) if args.limit is None else min(args.limit, len(scenes)))]
    else:
        names = getattr(reader, "names", None) or [str(i) for i in range(len(reader))]
        held_out = [i for i, n in enumerate(names) if _is_val(n, TrainConfig.val_fraction)]
        if args.limit is not None:
            held_out = held_out[:args.limit]
        if not held_out:
            raise DataError(f"{args.data}: no file falls in the trainer's held-out split")
        samples = [reader[i] for i in held_out]
    segmenter, _ = load_segmenter(args.weights, args.random_init, options=args.segmenter_options)
    axes = [[int(v) for v in _floats(args.side)]] + [parse(getattr(args, name)) for name, _, parse in AXES]
    rows = []
    for side, *values in itertools.product(*axes):
        segmenter.full_image_side = side
        options = {name: v for (name, _, _), v in zip(AXES, values)}
        counts = {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}
        regions = {"covering_cnt": 0.0, "covering_total": 0.0, "pri": 0.0, "voi": 0.0, "n_regions": 0}
        seconds = 0.0
        for s in samples:
            t0 = time.perf_counter()
            labels = segmenter.segment_image(s.image, **options)
            seconds += time.perf_counter() - t0
            if scenes is not None:
                r = region_scores(labels, s.humans)
                for k in regions:
                    regions[k] += r[k]
            else:
                r = panoptic_quality(labels, s.segments, s.ignore)
                for k in counts:
                    counts[k] += r[k]
        row = {"side": side, **options, "images": len(samples), "seconds_per_image": seconds / len(samples)}
        if scenes is not None:
            n = len(samples)
            row.update(covering=regions["covering_cnt"] / regions["covering_total"], pri=regions["pri"] / n,
                       voi=regions["voi"] / n, regions=regions["n_regions"] / n)
        else:
            row.update(**pq_from_counts(counts["iou_sum"], counts["tp"], counts["fp"], counts["fn"]), **counts)
        rows.append(row)
        print(_fmt(row), file=sys.stderr, flush=True)
    key = "covering" if scenes is not None else "pq"
    rows.sort(key=lambda r: -r[key])
    return rows


def _fmt(r: dict) -> str:
    head = (f"side {r['side']:4d}  radius {r['min_pointer_radius']:4g}  area {r['min_area_fraction']:6g}  "
            f"score {r['min_score']:4g}  miss disk {r['miss_disk_fraction']:4g}  "
            f"misses {str(r['max_misses_in_a_row']):>4s}  refine {r['refine_passes']}  ")
    if "covering" in r:
        return (head + f"covering {r['covering']:.4f}  PRI {r['pri']:.4f}  VoI {r['voi']:.3f}  "
                f"regions {r['regions']:.1f}  {r['seconds_per_image']:.2f} s/image")
    return (head + f"PQ {r['pq']:.3f}  SQ {r['sq']:.3f}  RQ {r['rq']:.3f}  "
            f"TP {r['tp']:4d}  FP {r['fp']:4d}  FN {r['fn']:4d}  {r['seconds_per_image']:.2f} s/image")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rows = tune(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    best = "covering" if rows and "covering" in rows[0] else "PQ"
    print(f"held-out split of {args.data}, best {best} first:")
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
