"""Start the annotator, or run one of its headless jobs.

    python main.py [IMAGE | FOLDER | PROJECT]           the desktop annotator
    python main.py segment IMAGE [--out PNG]            auto-segment one image, write an overlay PNG
    python main.py auto IMAGES_DIR --out OUT_DIR        auto-segment a folder into a COCO panoptic export
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# OpenCV's own decode limit, as a backstop behind train.readers.MAX_PIXELS (which refuses large images from their
# header) for files whose header that check cannot parse. OpenCV reads it once, when cv2 is imported: set it here,
# before anything imports cv2. Keep equal to train.readers.MAX_PIXELS (tests/test_image_limits.py checks).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "50000000")


def _load_segmenter(weights: str | None, random_init: bool = False):
    from model import Segmenter, WeightsError

    if random_init:
        return Segmenter.random_init(seed=0)  # an untrained net: plumbing tests and demos only
    try:
        return Segmenter.from_pretrained(weights)
    except WeightsError as exc:
        sys.exit(f"error: {exc}")


def overlay(image, labels, alpha: float = 0.5):
    """RGB image with each segment tinted in its own colour and outlined."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    colours = rng.integers(40, 256, (int(labels.max()) + 1, 3)).astype(np.uint8)
    colours[0] = 0
    tint = colours[labels]
    out = image.copy()
    seg = labels > 0
    out[seg] = (image[seg] * (1 - alpha) + tint[seg] * alpha).astype(np.uint8)
    edges = cv2.morphologyEx(labels.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = 255
    return out


def cmd_segment(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="main.py segment", description="Auto-segment one image (headless).")
    p.add_argument("image")
    p.add_argument("--out", help="overlay PNG to write (default: IMAGE_STEM_segments.png next to the image, "
                                 "or in the current folder if that is not writable)")
    p.add_argument("--weights", help="weights file (default: the bundled ones)")
    a = p.parse_args(argv)
    import cv2

    from train.readers import read_image_rgb
    from train.sample import DataError

    try:
        image = read_image_rgb(a.image)
    except DataError as exc:
        sys.exit(f"error: {exc}")
    seg = _load_segmenter(a.weights)
    t0 = time.perf_counter()
    labels = seg.segment_image(image)
    dt = time.perf_counter() - t0
    out = Path(a.out) if a.out else Path(f"{Path(a.image).stem}_segments.png")
    ok = cv2.imwrite(str(out), cv2.cvtColor(overlay(image, labels), cv2.COLOR_RGB2BGR))
    if not ok:
        sys.exit(f"error: could not write {out}")
    print(f"{a.image}: {int(labels.max())} segments, {100 * (labels > 0).mean():.1f}% of the image labelled, "
          f"{dt:.2f} s on {seg.device}; overlay written to {out}")
    return 0


def cmd_auto(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="main.py auto",
                                description="Auto-segment every image of a folder into a COCO panoptic export "
                                            "(resumable), which the annotator opens for correction.")
    p.add_argument("images_dir")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--weights", help="weights file (default: the bundled ones)")
    p.add_argument("--random-init", action="store_true", help="an untrained net (tests and demos only)")
    a = p.parse_args(argv)
    from annotator.batch import run_auto
    from annotator.document import ProjectError, list_images, lock_project_dir, no_images_message

    try:
        if Path(a.images_dir).is_dir() and not list_images(a.images_dir):
            raise ProjectError(no_images_message(a.images_dir))  # before making the output folder or loading the net
        Path(a.out).mkdir(parents=True, exist_ok=True)
        lock = lock_project_dir(a.out)  # before loading the net: an output folder in use fails at once
    except (ProjectError, OSError) as exc:  # e.g. ProjectLockedError: names the holder's host and PID
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        json_path = run_auto(a.images_dir, a.out, segmenter=_load_segmenter(a.weights, a.random_init),
                             progress=True)
    except (ProjectError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        lock.release()
    print(f"COCO panoptic export written: {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "segment":
        return cmd_segment(argv[1:])
    if argv and argv[0] == "auto":
        return cmd_auto(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    from annotator.app import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
