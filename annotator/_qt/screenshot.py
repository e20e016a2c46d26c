"""``--screenshot``: drive the real window through a short demo, grab it to a PNG, quit.

Used by tools/screenshot.sh (under Xvfb) and for documentation images. The steps run as a generator polled by
a QTimer, so the event loop (and the worker) keep running between them.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterator, List, Optional

from PyQt5.QtCore import QObject, QTimer
from PyQt5.QtWidgets import QApplication


class ScreenshotScript(QObject):
    def __init__(self, win, out_path: str, clicks: List[str], auto: bool, timeout_s: float = 180.0,
                 overview: bool = False) -> None:
        super().__init__(win)
        self.win = win
        self.out_path = out_path
        self.clicks = clicks  # "X,Y" strings or "center" (resolved once the image is loaded)
        self.auto = auto or overview
        self.overview = overview  # leave the auto-segment proposals shown all at once (V), not accepted
        self.deadline = time.monotonic() + timeout_s
        self._steps: Optional[Iterator[Callable[[], bool]]] = None
        self._waiting: Optional[Callable[[], bool]] = None
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._steps = self._script()
        self._timer.start()

    def _script(self) -> Iterator[Callable[[], bool]]:
        win = self.win
        model_done = {"v": False}
        win.worker.worker.model_ready.connect(lambda *_: model_done.__setitem__("v", True))
        win.worker.worker.model_error.connect(lambda *_: model_done.__setitem__("v", True))
        yield lambda: model_done["v"] or win.device != "loading…"
        if win.image is not None and "no model" not in win.device:
            if self.auto:
                finished = {"v": False}
                win.bulk_finished.connect(lambda *_: finished.__setitem__("v", True))
                win.auto_segment()
                yield lambda: finished["v"]
                if self.overview:
                    win.toggle_overview()
                elif win.bulk.get(win.index) or win.proposal is not None:
                    win.accept_all()
            h, w = win.image.shape[:2]
            # In the overview a click drops the proposal under it: the overview screenshot shows them all (the
            # screenshot tool always passes a centre click, which dropped one proposal from the README's picture).
            for k, spec in enumerate([] if self.overview else self.clicks):
                # "-X,Y": a negative click that corrects the proposal; a positive click first accepts it.
                negative = spec.startswith("-")
                x, y = (w // 2, h // 2) if spec == "center" else (int(v) for v in spec.lstrip("-").split(","))
                win.on_canvas_click(x, y, not negative)
                yield lambda: win.pending is None
                if k + 1 < len(self.clicks) and not self.clicks[k + 1].startswith("-"):
                    win.accept_proposal()
        yield lambda: True  # one more turn for the coalesced redraw
        t = time.monotonic()
        yield lambda: time.monotonic() - t > 0.3

    def _tick(self) -> None:
        if self._waiting is not None and not self._waiting() and time.monotonic() < self.deadline:
            return
        try:
            self._waiting = next(self._steps)
        except StopIteration:
            self._timer.stop()
            self._save()

    def _save(self) -> None:
        ok = self.win.grab().save(self.out_path, "PNG")
        print(f"screenshot {'written to' if ok else 'FAILED for'} {self.out_path}", file=sys.stderr)
        self.win.exit_code = 0 if ok else 1
        self.win.close()
        QApplication.instance().exit(self.win.exit_code)
