"""Background inference: a QObject living in a QThread that runs the Segmenter.

The GUI thread never calls the net. It sends requests through queued signals and receives results through
signals. Every request carries an id; a newer request supersedes older ones (``latest_id``), so the worker
skips stale requests still queued and the GUI ignores stale results.
"""
from __future__ import annotations

import inspect
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional

import numpy as np
from PyQt5.QtCore import QObject, QThread, pyqtSignal, pyqtSlot


def _load_default_segmenter() -> Any:
    """Import lazily so the GUI starts (and manual editing works) even if model/ or its weights are broken."""
    from model import Segmenter

    return Segmenter.from_pretrained()


def _takes_keyword(fn: Callable, name: str) -> bool:
    """Whether `fn` accepts the keyword `name` (segmenters without previews, e.g. older or test ones, work too)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class SegmentWorker(QObject):
    """Runs ``predict`` / ``segment_image`` off the GUI thread. Create via :class:`WorkerThread`."""

    # request id, mask (HxW bool), score, latency seconds, (reading shown, readings of the first click)
    predicted = pyqtSignal(int, object, float, float, object)
    # request id, mask (HxW bool), score: the first net pass of a new first click, while its refinements run
    previewed = pyqtSignal(int, object, float)
    # request id, label map (HxW int32), cancelled flag, latency seconds
    segmented = pyqtSignal(int, object, bool, float)
    progress = pyqtSignal(int, float)  # request id, done fraction
    failed = pyqtSignal(int, str)  # request id, message
    model_ready = pyqtSignal(str)  # device
    model_error = pyqtSignal(str)
    weights_loaded = pyqtSignal(str, str, object)  # path, device, info dict from the weights file
    weights_failed = pyqtSignal(str, str)  # path, message (the segmenter keeps its previous weights)

    def __init__(self, segmenter: Any = None, factory: Optional[Callable[[], Any]] = None) -> None:
        super().__init__()
        self._segmenter = segmenter
        self._factory = factory or _load_default_segmenter
        self._load_error: Optional[str] = None
        # Written by the GUI thread, read here; plain int assignment is atomic under the GIL.
        self.latest_id = 0  # newest predict request
        self.latest_segment_id = 0  # newest auto-segment request (separate: a click must not drop it)
        self.cancel = threading.Event()
        self.dropped = 0  # stale requests skipped without running (for tests / stats)

    def _model(self) -> Any:
        if self._segmenter is None and self._load_error is None:
            try:
                self._segmenter = self._factory()
            except Exception as exc:  # WeightsError, ImportError, ... : report, keep the app usable
                self._load_error = f"Segmentation model unavailable: {exc}"
                self.model_error.emit(self._load_error)
                return None
            self.model_ready.emit(str(getattr(self._segmenter, "device", "?")))
        return self._segmenter

    @staticmethod
    def _leave_a_core_for_the_ui() -> None:
        """Cap torch's CPU threads at cores - 1: with every core busy in the net, the GUI thread waits for CPU
        time and the event loop stutters (measured with bench/heartbeat.py). No effect on GPU inference."""
        torch = sys.modules.get("torch")
        if torch is None:
            return
        try:
            cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        cap = max(1, cores - 1)
        if torch.get_num_threads() > cap:
            torch.set_num_threads(cap)

    @staticmethod
    def _lower_priority(nice: int = 10) -> None:
        """Make the inference thread yield the CPU to the GUI thread (Linux: per-thread nice value; threads the
        net starts from here inherit it). Without it, on a busy machine the event loop waits for CPU time."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except (AttributeError, OSError, PermissionError):
            pass  # not Linux / not allowed: fine, only responsiveness under load suffers

    @pyqtSlot()
    def load(self) -> None:
        """Load the model now (in the worker thread) so the first click is not slowed by loading."""
        given = self._segmenter is not None
        self._lower_priority()
        self._leave_a_core_for_the_ui()
        if self._model() is not None and given:
            self.model_ready.emit(str(getattr(self._segmenter, "device", "?")))

    @pyqtSlot(str)
    def load_weights(self, path: str) -> None:
        """Switch the running segmenter to the weights in `path` (between two requests, so no prediction sees
        half-loaded weights). Without a segmenter yet (or after a failed load) build one from the file."""
        try:
            if self._segmenter is not None and hasattr(self._segmenter, "load_weights"):
                info = self._segmenter.load_weights(path)
            else:
                from model import Segmenter

                self._segmenter = Segmenter.from_pretrained(path)
                info = getattr(self._segmenter, "info", {})
                self._leave_a_core_for_the_ui()
        except Exception as exc:  # WeightsError (bad file), OSError, ...: keep what was loaded
            self.weights_failed.emit(path, str(exc))
            return
        self._load_error = None
        self.weights_loaded.emit(path, str(getattr(self._segmenter, "device", "?")), dict(info or {}))

    @pyqtSlot(int, object, object, object, int)
    def predict(self, req_id: int, image: np.ndarray, clicks: list, roi: Optional[np.ndarray], reading: int = 0
                ) -> None:
        if req_id != self.latest_id:
            self.dropped += 1
            return
        seg = self._model()
        if seg is None:
            self.failed.emit(req_id, self._load_error or "no model")
            return
        t0 = time.perf_counter()

        def preview(mask: np.ndarray, score: float) -> None:
            if req_id == self.latest_id:  # a newer click already superseded this one: nobody waits for it
                self.previewed.emit(req_id, np.asarray(mask, bool), float(score))

        kwargs: dict = {"reading": reading} if reading else {}
        if _takes_keyword(seg.predict, "preview"):
            kwargs["preview"] = preview
        try:
            pred = seg.predict(image, clicks, roi=roi, **kwargs)
        except Exception as exc:
            traceback.print_exc()
            self.failed.emit(req_id, f"prediction failed: {exc}")
            return
        readings = (int(getattr(pred, "reading", 0)), len(getattr(pred, "readings", ()) or ()))
        self.predicted.emit(req_id, np.asarray(pred.mask, bool), float(pred.score), time.perf_counter() - t0,
                            readings)

    @pyqtSlot(int, object, object)
    def segment(self, req_id: int, image: np.ndarray, roi: Optional[np.ndarray]) -> None:
        if req_id != self.latest_segment_id:
            self.dropped += 1
            return
        seg = self._model()
        if seg is None:
            self.failed.emit(req_id, self._load_error or "no model")
            return

        def progress(frac: float) -> bool:
            self.progress.emit(req_id, float(frac))
            return not self.cancel.is_set()

        t0 = time.perf_counter()
        try:
            labels = seg.segment_image(image, roi=roi, progress=progress)
        except Exception as exc:
            traceback.print_exc()
            self.failed.emit(req_id, f"auto-segment failed: {exc}")
            return
        self.segmented.emit(req_id, np.asarray(labels, np.int32), self.cancel.is_set(), time.perf_counter() - t0)


class WorkerThread(QObject):
    """Owns the QThread and the worker; the GUI talks to it with ``request_*`` methods."""

    _do_predict = pyqtSignal(int, object, object, object, int)
    _do_segment = pyqtSignal(int, object, object)
    _do_load = pyqtSignal()
    _do_load_weights = pyqtSignal(str)

    def __init__(self, segmenter: Any = None, factory: Optional[Callable[[], Any]] = None, parent=None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("segment-worker")
        self.worker = SegmentWorker(segmenter, factory)
        self.worker.moveToThread(self.thread)
        self._do_predict.connect(self.worker.predict)
        self._do_segment.connect(self.worker.segment)
        self._do_load.connect(self.worker.load)
        self._do_load_weights.connect(self.worker.load_weights)
        self._next_id = 0
        self.thread.start()

    def _new_id(self, segment: bool = False) -> int:
        self._next_id += 1
        if segment:
            self.worker.latest_segment_id = self._next_id
        else:
            self.worker.latest_id = self._next_id
        return self._next_id

    def load(self) -> None:
        self._do_load.emit()

    def request_load_weights(self, path: str) -> None:
        """Queue a switch to other weights; the answer is ``worker.weights_loaded`` / ``weights_failed``."""
        self._do_load_weights.emit(str(path))

    def request_predict(self, image: np.ndarray, clicks: list, roi: Optional[np.ndarray], reading: int = 0) -> int:
        """Queue a prediction (building on the first click's `reading`); any earlier request becomes stale.
        Returns the request id."""
        rid = self._new_id()
        self._do_predict.emit(rid, image, list(clicks), roi, int(reading))
        return rid

    def request_segment(self, image: np.ndarray, roi: Optional[np.ndarray]) -> int:
        rid = self._new_id(segment=True)
        self.worker.cancel.clear()
        self._do_segment.emit(rid, image, roi)
        return rid

    def cancel(self) -> None:
        """Cancel a running auto-segment (checked at its next progress callback) and drop queued work."""
        self.worker.cancel.set()
        self._new_id(segment=True)

    def stop(self) -> None:
        self.cancel()
        self._new_id()  # drop queued predictions too
        self.thread.quit()
        self.thread.wait(10000)

    def __del__(self) -> None:
        # A window dropped without close() (a crashed caller, a test harness) must not take the process down:
        # Qt aborts when a running QThread is destroyed, so stop it before the collector frees it.
        try:
            if self.thread.isRunning():
                self.stop()
        except (RuntimeError, AttributeError):
            pass  # the C++ side is already gone, or __init__ did not get as far as the thread
