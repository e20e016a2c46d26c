"""What a first click costs and gives under Segmenter settings, on the validation split's photo objects.

    python bench/first_click_cost.py --variant default --variant "never skip:first_click_confident=1.0"

Each `--variant NAME[:KEY=VALUE,KEY=VALUE...]` (values read as JSON) is a Segmenter built with those options and the
same weights. For every photo object of the fixed validation split (`train/val_split.json`, never a benchmark) it
places the protocol's first click (the object's interior-most pixel) and reports the mean IoU@1, the mean IoU of
the best of the click's readings (what Tab offers), the net work as passes of 448 x 448 pixels (the padded input
area of every net pass over 448^2: a cost that does not drift with the machine's load, unlike the seconds also
given), and each variant's paired IoU@1 difference from the first one with its standard error. `--limit N` takes an
even share of N objects.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.segmenter import net_input_size  # noqa: E402
from train.continuous import validation_objects  # noqa: E402
from train.evaluate import load_segmenter, mask_iou, parse_segmenter_options  # noqa: E402
from train.sampling import next_click  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict]:
    """"NAME[:KEY=VALUE,...]" -> (NAME, Segmenter options)."""
    name, _, opts = text.partition(":")
    return name, parse_segmenter_options([o for o in opts.split(",") if o]) if opts else {}


def count_passes(seg) -> list[float]:
    """Wrap `seg._run` so each net pass appends its padded input area over 448^2 to the returned list."""
    passes: list[float] = []
    run = seg._run

    def counted(image, roi, clicks, prev, window, side, *keys):
        _, _, pw, ph = net_input_size(window[2] - window[0], window[3] - window[1], side)
        passes.append(pw * ph / 448 ** 2)
        return run(image, roi, clicks, prev, window, side, *keys)

    seg._run = counted
    return passes


def first_clicks(seg, samples: list) -> dict:
    """Per object: IoU@1, best reading's IoU, net passes, seconds."""
    passes = count_passes(seg)
    rows = {"iou1": [], "best_reading": [], "passes": [], "seconds": []}
    for sample in samples:
        target, valid = sample.segments[0], ~sample.ignore
        click = next_click(np.zeros_like(target), target, valid)
        passes.clear()
        t0 = time.perf_counter()
        pred = seg.predict(sample.image, [click])
        rows["seconds"].append(time.perf_counter() - t0)
        rows["iou1"].append(mask_iou(pred.mask, target, valid))
        rows["best_reading"].append(max([mask_iou(m, target, valid) for m in pred.readings] or [rows["iou1"][-1]]))
        rows["passes"].append(sum(passes))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", action="append", default=[], help="NAME[:KEY=VALUE,...]; repeatable")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--weights", help="net weights (default: bundled)")
    p.add_argument("--limit", type=int, help="an even share of this many objects (default: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write per-object rows here")
    a = p.parse_args(argv)
    variants = [parse_variant(v) for v in (a.variant or ["default"])]
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    samples = [s for s in (reader[i] for reader, i in validation_objects(a.data, a.limit)) if s.segments]
    if not samples:
        p.error(f"no validation photo objects under {a.data}")
    print(f"{len(samples)} validation photo objects")
    print(f"{'variant':24s} {'IoU@1':>7s} {'best reading':>13s} {'passes':>7s} {'s p50':>7s}  paired IoU@1 (s.e.)")
    results = {}
    for name, options in variants:
        seg, _ = load_segmenter(a.weights, False, options=options)
        rows = results[name] = first_clicks(seg, samples)
        line = (f"{name:24s} {np.mean(rows['iou1']):7.4f} {np.mean(rows['best_reading']):13.4f} "
                f"{np.mean(rows['passes']):7.2f} {np.median(rows['seconds']):7.3f}")
        if len(results) > 1:
            d = np.subtract(rows["iou1"], results[variants[0][0]]["iou1"])
            line += f"  {d.mean():+.4f} ({d.std(ddof=1) / np.sqrt(len(d)):.4f})"
        print(line, flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
