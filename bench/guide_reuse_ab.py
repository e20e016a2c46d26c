"""Same-process A/B of `Segmenter.segment_image` time: the guided filter's guide statistics reused across the
pointers of an image (the default) against rebuilt for every pointer (the older way). Both variants give the
same labels (tests/test_guided.py); only time differs. The variants alternate per image, and their order flips each
round, so machine drift falls on both alike.

    python bench/guide_reuse_ab.py --images "../shared/data/camvid/val/images/*" --limit 12 --rounds=2
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train.evaluate import load_segmenter  # noqa: E402


def run(images: list[np.ndarray], seg, rounds: int) -> dict:
    """Seconds per segment_image call for each arm, paired by image and round."""
    fast_run = seg._run

    def rebuilding_run(*a, **k):
        seg._guide = None  # forget the guide: every pointer pays for it again
        return fast_run(*a, **k)

    times: dict[str, list[float]] = {"reused": [], "rebuilt": []}
    for r in range(rounds):
        for image in images:
            for arm in (("reused", "rebuilt") if r % 2 == 0 else ("rebuilt", "reused")):
                seg._run = fast_run if arm == "reused" else rebuilding_run
                t0 = time.perf_counter()
                seg.segment_image(image)
                times[arm].append(time.perf_counter() - t0)
    seg._run = fast_run
    ratio = np.array(times["rebuilt"]) / np.array(times["reused"])
    return {arm: {"mean_s": float(np.mean(v)), "median_s": float(np.median(v)), "n": len(v)}
            for arm, v in times.items()} | {"median_ratio_rebuilt_over_reused": float(np.median(ratio))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default="../shared/data/camvid/val/images/*", help="glob of image files")
    p.add_argument("--limit", type=int, default=12)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", help="net weights (default: the bundled ones)")
    p.add_argument("--random-init", action="store_true", help="an untrained net (tests)")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    files = sorted(glob.glob(a.images))[:a.limit]
    images = [im[..., ::-1].copy() for im in (cv2.imread(f) for f in files) if im is not None]
    if not images:
        p.error(f"no readable image matches {a.images!r}")
    seg, _ = load_segmenter(a.weights, a.random_init)
    if seg.guided_radius < 1:
        p.error("the guided filter is off in this Segmenter: nothing to compare")
    result = run(images, seg, a.rounds)
    for arm in ("reused", "rebuilt"):
        print(f"{arm:8s} mean {result[arm]['mean_s']:.3f} s  median {result[arm]['median_s']:.3f} s  "
              f"over {result[arm]['n']} calls")
    print(f"median per-image ratio rebuilt/reused: {result['median_ratio_rebuilt_over_reused']:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps(result | {"images": files}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
