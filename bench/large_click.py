"""Click latency on a huge photo with and without the Segmenter's working copy (`work_side`), in one process.

A click on an image larger than `work_side` (1792 px with the defaults) runs on a copy scaled to it and the
masks come back at full resolution; `work_side=-1` runs every view from the full-resolution image, ROI and
masks. Both segmenters answer the same clicks on the bundled sample scaled up to ``--megapixels``, interleaved
so a busy CPU slows both alike; the table gives the median of ``--repeat`` rounds per step, and the IoU of the
two answers (they should agree).

    python bench/large_click.py [--megapixels 24] [--repeat 5] [--threads 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", help="default: the bundled weights")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from model import Segmenter

    src = cv2.imread(str(ROOT / "resources" / "sample.jpg"))[:, :, ::-1]
    h0, w0 = src.shape[:2]
    f = (args.megapixels * 1e6 / (h0 * w0)) ** 0.5
    image = np.ascontiguousarray(cv2.resize(src, (round(w0 * f), round(h0 * f)), interpolation=cv2.INTER_CUBIC))
    h, w = image.shape[:2]
    roi = np.ones((h, w), bool)
    roi[: h // 5] = False  # a labelled strip, so the ROI is not trivial
    arms = {"working copy": Segmenter.from_pretrained(args.weights, device="cpu"),
            "full resolution": Segmenter.from_pretrained(args.weights, device="cpu", work_side=-1)}
    print(f"image {w}x{h} ({w * h / 1e6:.1f} MP), work_side {arms['working copy'].work_side}, "
          f"runtime {arms['working copy'].runtime}, {args.threads} threads")
    rng = np.random.default_rng(0)
    times: dict[str, dict[str, list[float]]] = {a: {"first click": [], "correction": []} for a in arms}
    ious: list[float] = []
    for arm in arms.values():  # warm-up: the runtimes compile on their first pass
        arm.predict(image, [(w / 2, h / 2, True)], roi)
    for r in range(args.repeat):
        x, y = float(rng.uniform(0.2, 0.8) * w), float(rng.uniform(0.3, 0.8) * h)
        first = [(x, y, True)]
        masks = {}
        for name, arm in (arms.items() if r % 2 == 0 else reversed(arms.items())):
            t = time.perf_counter()
            p = arm.predict(image, first, roi)
            times[name]["first click"].append(time.perf_counter() - t)
            masks[name] = p.mask
        # The correction: a negative click at the mask pixel farthest inside from the click, if any.
        m = masks["full resolution"]
        ys, xs = np.nonzero(m[:: 16, :: 16])
        if len(xs):
            k = int(np.argmax((xs * 16 - x) ** 2 + (ys * 16 - y) ** 2))
            chain = first + [(float(xs[k] * 16), float(ys[k] * 16), False)]
        else:
            chain = first + [(min(w - 1.0, x + w / 10), y, True)]
        for name, arm in (arms.items() if r % 2 == 0 else reversed(arms.items())):
            t = time.perf_counter()
            p = arm.predict(image, chain, roi)
            times[name]["correction"].append(time.perf_counter() - t)
            masks[name] = p.mask
        a, b = masks["working copy"], masks["full resolution"]
        union = np.count_nonzero(a | b)
        ious.append(np.count_nonzero(a & b) / union if union else 1.0)
    out = {"megapixels": w * h / 1e6, "size": [w, h], "threads": args.threads, "repeat": args.repeat,
           "median_s": {a: {k: float(np.median(v)) for k, v in d.items()} for a, d in times.items()},
           "iou_after_correction": {"mean": float(np.mean(ious)), "min": float(np.min(ious))}}
    print(f"{'':18s}{'first click s':>15s}{'correction s':>15s}")
    for name, d in out["median_s"].items():
        print(f"{name:18s}{d['first click']:15.3f}{d['correction']:15.3f}")
    print(f"IoU of the two answers after the correction: mean {np.mean(ious):.3f}, min {np.min(ious):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
