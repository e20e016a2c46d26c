"""Where a first click's mask goes wrong: its precision, recall and size against the object, on the validation photos.

    python bench/first_click_spill.py OLD.safetensors NEW.safetensors [--limit N] [--json OUT.json]

For each weights file, the first click of the standard protocol (the object's interior-most point) on every photo
object of the fixed validation split (`train/val_split.json`, COCO-MVal and salient photos, never trained on),
with the current `Segmenter` defaults. Per source: mean precision (share of the mask on the object), recall
(share of the object in the mask), log2 of mask area / object area, and "spills": masks more than twice the
object's size with precision under 0.5 (a click on one person that takes the crowd). From the second weights
file on, each figure's paired difference against the first, with its standard error. A first mask that spills
and one that stops at a part lose the same IoU; this tells which of the two a change of weights moved.
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

from train.continuous import PHOTO_SOURCES, validation_objects  # noqa: E402
from train.evaluate import NetMethod, load_segmenter  # noqa: E402
from train.sampling import next_click  # noqa: E402

FIGURES = ("precision", "recall", "log2_area_ratio", "spill")


def first_click_rows(weights: str, data_root: str, limit: int | None = None) -> list[dict]:
    """One row per validation photo object: its name and the first click's precision, recall, area ratio, spill."""
    seg, _ = load_segmenter(weights, False, backend="torch")
    method = NetMethod(seg)
    rows = []
    for reader, i in validation_objects(data_root, limit):
        sample = reader[i]
        if not sample.segments:
            continue
        valid = ~sample.ignore
        target = sample.segments[0] & valid
        click = next_click(np.zeros_like(target), target, valid)
        if click is None:
            continue
        mask = np.asarray(method.predict(sample.image, [click]), bool) & valid
        hit = int((mask & target).sum())
        precision = hit / max(1, int(mask.sum()))
        ratio = max(int(mask.sum()), 1) / max(1, int(target.sum()))
        rows.append({"name": f"{Path(reader.root).name}/{sample.name}", "precision": precision,
                     "recall": hit / max(1, int(target.sum())), "log2_area_ratio": float(np.log2(ratio)),
                     "spill": float(ratio > 2 and precision < 0.5)})
    return rows


def summarise(runs: dict[str, list[dict]]) -> str:
    """Per photo source and weights file: the mean of each figure, and from the second file on the paired
    difference against the first (standard error in brackets)."""
    names = list(runs)
    base = {r["name"]: r for r in runs[names[0]]}
    lines = []
    for source in PHOTO_SOURCES:
        lines.append(f"{source}: " + "  ".join(f"{f:>16}" for f in FIGURES))
        for w in names:
            rows = [r for r in runs[w] if r["name"].startswith(source + "/") and r["name"] in base]
            if not rows:
                continue
            cells = []
            for f in FIGURES:
                v = np.array([r[f] for r in rows])
                cell = f"{v.sum():.0f}/{len(v)}" if f == "spill" else f"{v.mean():.3f}"
                if w != names[0]:
                    d = v - np.array([base[r["name"]][f] for r in rows])
                    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
                    cell += f" {d.mean():+.3f}({se:.3f})" if f != "spill" else f" {d.sum():+.0f}"
                cells.append(f"{cell:>16}")
            lines.append(f"  {Path(w).name[:30]:30} " + "  ".join(cells) + f"   n={len(rows)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", nargs="+", help="weights files; the first is the reference of the paired differences")
    p.add_argument("--data", default="../shared/data", help="the data folder (default ../shared/data)")
    p.add_argument("--limit", type=int, help="an even share of this many objects of each source")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write every object's figures here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    runs = {w: first_click_rows(w, a.data, a.limit) for w in a.weights}
    print(summarise(runs))
    if a.json:
        Path(a.json).write_text(json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
