"""Click latency of two weights files side by side, on the same clicks, in one process: what a larger encoder costs.

    python bench/encoder_latency.py A.safetensors B.safetensors [--images 20] [--clicks 10] [--threads 2]

For each 640x480 photo (the images of bench/bench_segmenter.py) the clicks are placed by the standard protocol from
A's errors, then replayed on both, so both answer exactly the same clicks; which of the two runs first alternates
from photo to photo, so a machine that gets busier or quieter during the run tilts neither. Reports p50 / p90 of the
first click's final answer and of the later clicks for each, and B's p50 over A's: the ratio holds on a noisy
machine where the milliseconds drift. Each Segmenter runs with its default runtime, as the annotator does.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# peer_chain times any predict(image, clicks) over a click sequence given one more click at a time
from bench.bench_segmenter import _percentiles, click_chain, load_images, peer_chain as replay  # noqa: E402
from train.evaluate import load_segmenter  # noqa: E402


def compare(seg_a, seg_b, images: list, n_clicks: int) -> dict:
    # All clicks first (A's errors), then the timing pass: each Segmenter keeps the last photo's work, so a
    # placement run right before a timed one would favour A.
    chains = [click_chain(seg_a, image, target, valid, n_clicks)[0] for _, image, target, valid in images]
    first = {"a": [], "b": []}
    later = {"a": [], "b": []}
    for i, ((_, image, _, _), clicks) in enumerate(zip(images, chains)):
        order = (("a", seg_a), ("b", seg_b)) if i % 2 == 0 else (("b", seg_b), ("a", seg_a))
        for key, seg in order:
            times = replay(seg, image, clicks)
            if times:
                first[key].append(times[0])
                later[key].extend(times[1:])
    out = {k: {"first": _percentiles(first[k]), "later": _percentiles(later[k])} for k in ("a", "b")}
    out["ratio_first_p50"] = out["b"]["first"]["p50"] / out["a"]["first"]["p50"]
    out["ratio_later_p50"] = out["b"]["later"]["p50"] / out["a"]["later"]["p50"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="weights A (the reference)")
    p.add_argument("b", help="weights B")
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--clicks", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--synthetic", action="store_true", help="synthetic images even when real data is there")
    p.add_argument("--json", help="write the numbers here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    seg_a, desc_a = load_segmenter(a.a, False, 0, "cpu")
    seg_b, desc_b = load_segmenter(a.b, False, 0, "cpu")
    images, source = load_images(a.images, a.synthetic)
    warm = images[0]
    click_chain(seg_a, warm[1], warm[2], warm[3], 2)
    click_chain(seg_b, warm[1], warm[2], warm[3], 2)
    r = compare(seg_a, seg_b, images, a.clicks)
    r.update({"a": {**r["a"], "weights": desc_a["name"], "runtime": desc_a["runtime"]},
              "b": {**r["b"], "weights": desc_b["name"], "runtime": desc_b["runtime"]},
              "images": len(images), "source": source, "threads": a.threads})
    for key in ("a", "b"):
        s = r[key]
        name = Path(s["weights"])
        print(f"{key.upper()} {name.parent.name}/{name.name} ({s['runtime']}): first click p50 "
              f"{1000 * s['first']['p50']:.0f} ms (p90 {1000 * s['first']['p90']:.0f}), later clicks p50 "
              f"{1000 * s['later']['p50']:.0f} ms (p90 {1000 * s['later']['p90']:.0f})")
    print(f"B / A, p50: first click {r['ratio_first_p50']:.2f}x, later clicks {r['ratio_later_p50']:.2f}x "
          f"({r['images']} {source} photos, {a.threads} threads)")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
