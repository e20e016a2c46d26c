"""First-click IoU of the plain net pass against the internal long side, on held-out splits, by object size.

    python bench/first_click_sides.py --json runs/analysis/first_click_sides.json

The net's first pass sees the whole image at `--sides` (comma-separated long sides); no windows, no refinement.
It showed that large objects come out more whole when the image is shown smaller (the reason for
`Segmenter(large_object_side=320)`, README). Always the held-out split of each source (`train.evaluate
--held-out`), never a benchmark. `--data` takes `SPEC[@N]`: N segments per image at most (default 100).
`--predict` adds the first click as `Segmenter.predict` gives it (all first-click views and refinements); they
were checked on a third held-out set with `--data semantic:../shared/data/camvid/train@8 --skip-segments 4
--sides 448 --predict`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.segmenter import _fingerprint  # noqa: E402
from train.evaluate import load_segmenter, mask_iou, select_segments  # noqa: E402
from train.sampling import next_click  # noqa: E402
from train.trainer import TrainConfig, _is_val, open_source  # noqa: E402

AREA_BINS = ((0.0, 0.02), (0.02, 0.15), (0.15, 1.01))


def probe(seg, specs: list[str], sides: list[int], predict: bool = False, skip_segments: int = 0) -> list[dict]:
    """One row per held-out object: its first click's IoU from the plain pass at each side, and with `predict`
    also from `Segmenter.predict` (every first-click view and refinement of the current defaults). The first
    `skip_segments` selected segments of each image are left out (a later set of segments of the same images)."""
    rows = []
    for item in specs:
        spec, _, n = item.partition("@")
        reader, _, full = open_source(spec)
        for i, name in enumerate(reader.names):
            if not _is_val(name, TrainConfig.val_fraction):
                continue
            s = reader[i]
            h, w = s.image.shape[:2]
            valid = ~s.ignore
            roi = np.ones((h, w), bool)
            key = (_fingerprint(s.image), _fingerprint(roi))
            for k in select_segments(s, full, int(n or 100))[skip_segments:]:
                target = s.segments[k]
                click = next_click(np.zeros_like(target), target, valid)
                row = {"data": spec, "name": name, "area": float(target.mean()), "iou": {}}
                for side in sides:
                    prob, _ = seg._run(s.image, roi, [click], None, (0, 0, w, h), side, *key)
                    row["iou"][str(side)] = mask_iou(prob > seg._cut, target, valid)
                if predict:
                    row["iou"]["predict"] = mask_iou(seg.predict(s.image, [click]).mask, target, valid)
                rows.append(row)
    return rows


def table(rows: list[dict], sides: list[int]) -> list[str]:
    lines = []
    for spec in dict.fromkeys(r["data"] for r in rows):
        for lo, hi in AREA_BINS + ((0.0, 1.01),):
            sel = [r for r in rows if r["data"] == spec and lo <= r["area"] < hi]
            if sel:
                ious = " ".join(f"{s}:{np.mean([r['iou'][str(s)] for r in sel]):.3f}" for s in sides
                                if str(s) in sel[0]["iou"])
                lines.append(f"{spec}  area {lo:.2f}-{min(hi, 1):.2f}  n={len(sel)}  {ious}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", help="SPEC[@N], repeatable (default: the photos, and CamVid @4)")
    p.add_argument("--weights", help="net weights (default: the bundled ones)")
    p.add_argument("--random-init", action="store_true", help="an untrained net (tests)")
    p.add_argument("--sides", default="320,384,448,544,640")
    p.add_argument("--predict", action="store_true",
                   help="also the first click through Segmenter.predict with its default views and refinements")
    p.add_argument("--skip-segments", type=int, default=0,
                   help="leave out the first K selected segments of each image (e.g. @8 with 4: segments 5-8)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    sides = [int(x) for x in a.sides.split(",")]
    specs = a.data or ["masks:../shared/data/coco_mval_train", "semantic:../shared/data/camvid/train@4"]
    seg, _ = load_segmenter(a.weights, a.random_init)
    rows = probe(seg, specs, sides, a.predict, a.skip_segments)
    print("\n".join(table(rows, sides + ["predict"] if a.predict else sides)))
    if a.json:
        Path(a.json).write_text(json.dumps({"sides": sides, "data": specs, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
