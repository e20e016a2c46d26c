"""How long a new project takes to open a folder of camera photos (the window waits for it).

Writes ``--images`` copies of the bundled sample scaled to ``--megapixels`` (JPEG, as cameras write them) into a
temporary folder, then times ``Project.new`` on it, as *File > Open folder* does.

    python bench/open_folder.py [--images 100] [--megapixels 12]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--megapixels", type=float, default=12.0)
    args = ap.parse_args(argv)
    from annotator.document import Project

    tmp = tempfile.mkdtemp(prefix="open_folder_")
    try:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        src = cv2.imread(str(ROOT / "resources" / "sample.jpg"))
        h, w = src.shape[:2]
        f = (args.megapixels * 1e6 / (h * w)) ** 0.5
        ok, buf = cv2.imencode(".jpg", cv2.resize(src, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC),
                               [cv2.IMWRITE_JPEG_QUALITY, 92])
        for i in range(args.images):
            (folder / f"IMG_{i:05d}.jpg").write_bytes(buf.tobytes())
        t = time.perf_counter()
        project = Project.new(folder, Path(tmp) / "project")
        dt = time.perf_counter() - t
        e = project.images[0]
        print(f"{len(project.images)} JPEGs of {e.width}x{e.height} ({e.width * e.height / 1e6:.1f} MP), "
              f"{len(buf) / 1e6:.1f} MB each: Project.new {dt:.2f} s ({dt / args.images * 1000:.1f} ms an image)")
        project.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
