"""How long the window's own thread is busy on a huge image: open, click, accept, select, undo, redo.

The net runs in a worker thread, but redrawing the overlay, counting areas and saving the label map run in the
window's thread, so on a 24-megapixel scan each of them freezes the window for as long as it takes. The image is
the bundled sample scaled up (``--megapixels``), or ``--image PATH``; the bundled weights (random ones if they do
not load) answer the clicks.

    python bench/big_image_ui.py [--megapixels 24] [--image PATH] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def make_image(megapixels: float, folder: str) -> str:
    src = cv2.imread(str(ROOT / "resources" / "sample.jpg"))
    h, w = src.shape[:2]
    f = (megapixels * 1e6 / (h * w)) ** 0.5
    path = os.path.join(folder, f"sample_{megapixels:g}mp.jpg")
    cv2.imwrite(path, cv2.resize(src, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC),
                [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--image", help="use this image instead of the scaled-up sample")
    ap.add_argument("--repeat", type=int, default=3, help="accept / select / undo / redo rounds")
    args = ap.parse_args(argv)

    from PyQt5.QtCore import Qt
    from PyQt5.QtTest import QTest
    from PyQt5.QtWidgets import QApplication

    from annotator._qt.main_window import MainWindow
    from annotator.document import Project
    from model import Segmenter

    try:
        seg = Segmenter.from_pretrained()
    except Exception as exc:  # still measures the window's own work
        print(f"bundled weights unavailable ({exc}); random weights", file=sys.stderr)
        seg = Segmenter.random_init(seed=0)
    tmp = tempfile.mkdtemp(prefix="big_image_ui_")
    image = args.image or make_image(args.megapixels, tmp)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    times: dict[str, list[float]] = {}

    def timed(name: str, fn) -> None:
        t = time.perf_counter()
        fn()
        app.processEvents()  # the deferred redraw runs here, in the same thread
        times.setdefault(name, []).append(time.perf_counter() - t)

    def wait(pred, timeout: float = 120.0) -> float:
        """Wait in the event loop; returns the longest time one pass of it took (the worst freeze meanwhile)."""
        t, worst = time.monotonic(), 0.0
        while not pred() and time.monotonic() - t < timeout:
            t1 = time.perf_counter()
            app.processEvents()
            worst = max(worst, time.perf_counter() - t1)
            time.sleep(0.001)
        return worst

    project = Project.new([image], os.path.join(tmp, "project"))
    holder = {}
    timed("open the image (window shown)", lambda: holder.setdefault(
        "win", MainWindow(project, segmenter=seg, confirm_dialogs=False)).show())
    win = holder["win"]
    win.resize(1280, 800)
    h, w = win.image.shape[:2]
    rng = np.random.default_rng(0)
    for k in range(args.repeat):
        x, y = int(rng.integers(w // 8, w - w // 8)), int(rng.integers(h // 8, h - h // 8))
        while project.images[0].labels[y, x] != 0:
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        timed("click (the handler; the net runs in the worker)", lambda: win.on_canvas_click(x, y, True))
        times.setdefault("worst freeze until the proposal is shown", []).append(wait(lambda: win.pending is None))
        timed("accept the proposal (save included)", win.accept_proposal)
        sid = int(project.images[0].labels[y, x])
        if sid:
            timed("click a labelled pixel (select it)", lambda: win.on_canvas_click(x, y, True))
            timed("Esc (clear the selection)", lambda: QTest.keyClick(win, Qt.Key_Escape))
        timed("undo (save included)", win.undo)
        timed("redo (save included)", win.redo)
    print(f"image {image}: {w}x{h} ({w * h / 1e6:.1f} MP), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'window thread busy, ms':48s} {'median':>7s} {'max':>7s}  n")
    for name, ts in times.items():
        ms = np.array(ts) * 1000
        print(f"{name:48s} {np.median(ms):7.0f} {ms.max():7.0f}  {len(ms)}")
    win.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
