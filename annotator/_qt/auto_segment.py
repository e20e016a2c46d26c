"""Auto-segment this image / all images in the worker, with progress and Cancel; the results queue up as
proposals to review."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QInputDialog, QProgressDialog

from annotator.auto_category import (UNCATEGORISED, auto_segment_category, auto_segment_category_name,
                                     set_auto_segment_category)
from annotator.document import ProjectError


class AutoSegmentMixin:
    """Methods of MainWindow (annotator._qt.main_window), kept apart by topic; they use its widgets and state."""

    # ================================================================================ auto-segment
    def auto_segment(self) -> None:
        if self.entry is None:
            return
        self._start_bulk([self.index])

    def auto_segment_all(self) -> None:
        if self.project is None:
            return
        self._start_bulk([i for i, e in enumerate(self.project.images) if e.labelled_fraction() < 1.0])

    def choose_auto_segment_category(self, name: Optional[str] = None) -> None:
        """The category accepted auto-segment proposals get (asked for when not given); "uncategorised" by
        default, never the category picked for clicking. Remembered with the project."""
        if self.project is None:
            return
        cats = [c for c in self.project.categories if c.name != UNCATEGORISED]
        if name is None:
            names = [UNCATEGORISED] + [c.name for c in cats]
            cur = auto_segment_category_name(self.project)
            name, ok = QInputDialog.getItem(self, "Auto-segment", "Category for auto-segment proposals:", names,
                                            names.index(cur) if cur in names else 0, False)
            if not ok:
                return
        cid = next((c.id for c in cats if c.name == name), None)
        self._edit(set_auto_segment_category, self.project, cid)
        self.status(f"Auto-segment proposals are accepted as '{auto_segment_category_name(self.project)}'.")
        self._update_tool_panel()

    def _auto_proposal_category_text(self) -> str:
        """What the tool panel says of the category of the auto-segment proposal(s) shown."""
        try:
            if self.proposal_category is not None and not self.overview:
                return f"{self.project.category(self.proposal_category).name} (picked for this proposal)"
        except KeyError:
            pass
        return f"{auto_segment_category_name(self.project)} (1-9 picks one)"

    def _auto_category_id(self) -> Optional[int]:
        """The category id an accepted auto-segment proposal gets (made if needed; None if read-only)."""
        if self.proposal_category is not None and any(c.id == self.proposal_category
                                                      for c in self.project.categories):
            return self.proposal_category
        known = {c.id for c in self.project.categories}
        cid = self._edit(auto_segment_category, self.project)
        if cid is not None and cid not in known:
            self._refresh_categories()
        return cid

    def _start_bulk(self, indices: List[int]) -> None:
        if self._bulk_req is not None or not indices:
            return
        self._clear_proposal(cancel=True)
        self._bulk_jobs = list(indices)
        self._bulk_total = len(indices)
        self._progress = QProgressDialog("Auto-segmenting…", "Cancel", 0, 1000, self)
        self._progress.setWindowTitle("Auto-segment")
        self._progress.setWindowModality(Qt.WindowModal)
        self._progress.setMinimumDuration(0)
        self._progress.setAutoClose(False)
        self._progress.setAutoReset(False)
        self._progress.canceled.connect(self.cancel_bulk)
        self._progress.setValue(0)
        self._progress.show()
        self._run_next_bulk()

    def _run_next_bulk(self) -> None:
        if not self._bulk_jobs:
            self._finish_bulk(cancelled=False)
            return
        i = self._bulk_jobs[0]
        entry = self.project.images[i]
        try:
            img = self.image if i == self.index and self.image is not None else entry.read_image()
        except (ProjectError, OSError) as exc:
            self.notify(str(exc), error=True)
            self._bulk_jobs.pop(0)
            self._run_next_bulk()
            return
        roi = entry.unlabelled_mask().copy()
        self._bulk_req = self.worker.request_segment(img, roi)
        if self._progress is not None:
            self._progress.setLabelText(f"Auto-segmenting {entry.name} ({self._bulk_total - len(self._bulk_jobs) + 1}/{self._bulk_total})…")

    def _on_progress(self, req_id: int, frac: float) -> None:
        if req_id != self._bulk_req or self._progress is None:
            return
        done = self._bulk_total - len(self._bulk_jobs)
        self._progress.setValue(int(1000 * (done + frac) / max(1, self._bulk_total)))

    def cancel_bulk(self) -> None:
        if self._bulk_req is None:
            return
        self.worker.cancel()
        self._finish_bulk(cancelled=True)

    def _on_segmented(self, req_id: int, labels: np.ndarray, cancelled: bool, latency: float) -> None:
        if req_id != self._bulk_req:
            return
        i = self._bulk_jobs.pop(0)
        if cancelled:
            self._finish_bulk(cancelled=True)
            return
        masks = [labels == k for k in np.unique(labels) if k > 0]
        masks = [m for m in masks if m.any()]
        masks.sort(key=lambda m: -int(m.sum()))  # review large segments first
        if masks:
            self.bulk[i] = masks
        if i != self.index:
            self._persist_bulk(i)  # the shown image's queue is saved as its first proposal is shown
        self.status(f"Auto-segment: {len(masks)} proposals for {self.project.images[i].name} in {latency:.1f} s")
        if i == self.index:
            self._next_bulk_proposal()
        self._run_next_bulk()

    def _finish_bulk(self, cancelled: bool) -> None:
        self._bulk_req = None
        self._bulk_jobs = []
        if self._progress is not None:
            p, self._progress = self._progress, None
            p.canceled.disconnect(self.cancel_bulk)
            p.close()
            p.deleteLater()
        if cancelled:
            self.status("Auto-segment cancelled.")
        self._update_tool_panel()
        self.bulk_finished.emit(cancelled)
