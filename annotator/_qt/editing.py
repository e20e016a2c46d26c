"""Clicks to proposals, accept / reject, selection edits, brush and eraser, undo: the part of the main
window that turns a person's clicks into accepted segments (through the worker and annotator.document)."""
from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from annotator.document import ReadOnlyProjectError
from annotator.gaps import default_gap_width

from annotator.segment_colors import mask_key

from .canvas import compose_proposal, compose_proposals, segment_color

BULK_FILL = (255, 120, 255)  # auto-segment proposals under review


class EditingMixin:
    """Methods of MainWindow (annotator._qt.main_window), kept apart by topic; they use its widgets and state."""

    # ================================================================================ clicks & proposals
    def on_canvas_click(self, x: int, y: int, positive: bool, ctrl: bool = False) -> None:
        entry = self.entry
        if entry is None or self.image is None:
            return
        if self._bulk_req is not None:
            self.status("Auto-segment is running; wait or cancel it first.")
            return
        h, w = self.image.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            return
        if self.overview:
            self._drop_overview_proposal(x, y)
            return
        sid = int(entry.labels[y, x])
        if ctrl:  # selection of accepted segments
            if sid:
                if sid in self.selected:
                    self.selected.remove(sid)
                else:
                    self.selected.append(sid)
                self._refresh_selection()
                self._update_tool_panel()
            return
        if not self.clicks and sid and self.roi_mode != "whole":
            # Starting on an accepted segment selects it (the net cannot put anything there anyway).
            self.selected = [sid] if positive else []
            self._refresh_selection()
            self._update_tool_panel()
            cat = entry.segments.get(sid)
            if cat is not None:
                self.status(f"Selected segment {sid} ({self.project.category(cat.category_id).name})")
            return
        if sid and positive and self.clicks and self.roi_mode != "whole":
            # The proposal may only take unlabelled pixels: a click here would change nothing. Say so, and how.
            seg = entry.segments.get(sid)
            cat = self.project.category(seg.category_id).name if seg is not None else "?"
            self.status(f"That pixel belongs to segment {sid} ({cat}); the proposal only takes unlabelled pixels. "
                        "Press W (ROI: whole image) to let the new segment take pixels from other segments.")
            return
        if positive and self.roi_mode == "rect" and self.roi_rect is not None:
            x0, y0, x1, y1 = self.roi_rect
            if not (x0 <= x < x1 and y0 <= y < y1):
                # The box is the ROI: the net may put nothing outside it, so a click there would find nothing.
                self.status("That click is outside the ROI box, where the proposal may not go. Press Esc to clear "
                            "the box, or O to draw another.")
                return
        if self.selected:
            self.selected = []
            self._refresh_selection()
        if not self.clicks and not positive:
            self.status("The first click must be positive (left click).")
            return
        if self.proposal_from_bulk and not self.clicks and self.proposal is not None:
            if not self.proposal[y, x]:
                # A click elsewhere starts another object: the auto-segment proposal waits at the head of the
                # queue and comes back once this one is accepted or rejected.
                self.bulk.setdefault(self.index, []).insert(0, self.proposal)
            # (Re-clicking inside it refines it interactively from this click on.)
            self.proposal = None
            self._persist_bulk(self.index)
        if not self.clicks:
            self.reading, self.readings_count = 0, 0  # a new object: its first click's default reading
        self.clicks.append((int(x), int(y), bool(positive)))
        self._request_prediction()

    def _request_prediction(self) -> None:
        roi = self.current_roi()
        # UI work first (markers only: the mask overlay is redrawn when the answer comes), then hand the
        # request over, so the GUI thread is idle while the worker starts.
        self.canvas.set_clicks(self.clicks)
        self.status("Predicting…")
        self.pending = self.worker.request_predict(self.image, self.clicks, roi, self.reading)
        self._update_tool_panel()

    def next_reading(self) -> None:
        """Tab: show the next reading of the first click (the net's other answers for it, e.g. the part or the
        whole); later clicks then correct that reading."""
        if not self.clicks or self.readings_count < 2 or self.pending is not None:
            if self.clicks and self.readings_count < 2 and self.pending is None:
                self.status("The net has one reading of this click; click again to correct it.")
            return
        self.reading = (self.reading + 1) % self.readings_count
        self._request_prediction()

    def _on_previewed(self, req_id: int, mask: np.ndarray, score: float) -> None:
        """The first net pass of a new first click, shown while its other views and refinements run (they take
        most of the first click's 0.5-1 s). The request stays pending: Enter still accepts the final answer."""
        if req_id != self.pending or self.image is None or mask.shape != self.image.shape[:2] or not mask.any():
            return
        self.proposal = mask
        self.proposal_score = score
        self._show_proposal()

    def _on_predicted(self, req_id: int, mask: np.ndarray, score: float, latency: float,
                      readings: tuple = (0, 0)) -> None:
        if req_id != self.pending or self.image is None or mask.shape != self.image.shape[:2]:
            return  # superseded by a newer click, or the image changed
        self.pending = None
        self.reading, self.readings_count = int(readings[0]), int(readings[1])
        self.last_latency = latency
        self.status_latency.setText(f"last prediction: {latency * 1000:.0f} ms")
        self.proposal = mask
        self.proposal_score = score
        if not mask.any():
            where = " inside the ROI box" if self.roi_mode == "rect" and self.roi_rect is not None else ""
            self.status(f"The net found nothing there{where}; try another click.")
        else:
            self.status(f"Proposal: {int(mask.sum())} px, score {score:.2f}")
            self.clear_error_banner()
        self._show_proposal()
        if self.accept_when_ready:
            # Enter / A was pressed while this prediction ran: it meant "accept what this click gives".
            self.accept_when_ready = False
            self.accept_proposal()

    def _show_proposal(self) -> None:
        if self.proposal is None:
            self.canvas.set_proposal(None, self.clicks)
        else:
            fill = BULK_FILL if self.proposal_from_bulk and not self.clicks else (0, 255, 255)
            self.canvas.set_proposal(compose_proposal(self.proposal, fill=fill), self.clicks)
        self._update_tool_panel()
        self.proposal_changed.emit()

    def _clear_proposal(self, cancel: bool = False) -> None:
        self.accept_when_ready = False
        self.clicks = []
        self.reading, self.readings_count = 0, 0
        self.proposal = None
        self.proposal_from_bulk = False
        self.proposal_category = None
        self.pending = None
        self._show_proposal()

    def _edit(self, fn: Callable, *args, **kw) -> Any:
        """Run a document edit; a failed autosave (disk full, permissions) is reported, not fatal.

        The document keeps the change in memory marked unsaved, so the next successful save writes it.
        """
        try:
            return fn(*args, **kw)
        except ReadOnlyProjectError as exc:  # another process holds the project: viewing and export only
            self.messages.append(str(exc))
            self.status(f"Read-only project: the edit was refused ({self.project.read_only_reason}).")
            return None
        except OSError as exc:
            self.notify(f"Could not save the project: {exc}\nYour edit is kept in memory; fix the problem and "
                        "press Ctrl+S.", error=True)
            return None

    def accept_proposal(self) -> int:
        """Accept the shown proposal with the current category; returns the new segment id (0 if none)."""
        if self.entry is not None and self.pending is not None and self.clicks:
            self.accept_when_ready = True
            self.status("Still predicting… the proposal will be accepted when it arrives.")
            return 0
        if self.proposal is None or self.entry is None:
            self.status("No proposal to accept.")
            return 0
        if not self.proposal.any():
            self.status("Nothing to accept: the proposal is empty (the net found nothing there).")
            return 0
        if self.project.read_only:  # keep the proposal: the person may want to see it, not lose it silently
            self.status(f"Read-only project: the edit was refused ({self.project.read_only_reason}).")
            return 0
        auto = self.proposal_from_bulk and not self.clicks
        cid = self._auto_category_id() if auto else self._ensure_category()
        if cid is None:
            return 0
        mask = self.proposal
        # ROI "whole image": the person asked for a segment that may take pixels from others.
        overwrite = self.roi_mode == "whole" and not self.proposal_from_bulk
        self._clear_proposal()
        sid = self._edit(self.project.add_segment, self.index, mask, cid, overwrite=overwrite) or 0
        if sid:
            self.status(f"Accepted segment {sid} as {self.project.category(cid).name}.")
            self.clear_error_banner()
        else:
            self.status("Nothing left to accept: the proposal covers only labelled pixels.")
        self._next_bulk_proposal()
        return sid

    def reject_proposal(self) -> None:
        had = self.proposal is not None or bool(self.clicks)
        from_box = had and not (self.proposal_from_bulk and not self.clicks)
        self._clear_proposal(cancel=True)
        if from_box:
            self.clear_roi_box()  # a rejected box takes its ROI with it
        if had:
            self.status("Proposal rejected.")
        self._next_bulk_proposal()

    def accept_all(self) -> int:
        """Accept the shown proposal and every queued auto-segment proposal of this image (one undo step each)."""
        if self.entry is None:
            return 0
        if self.project.read_only:
            self.status(f"Read-only project: the edit was refused ({self.project.read_only_reason}).")
            return 0
        shown = self.proposal if self.proposal is not None and self.proposal.any() else None
        # Auto-segment proposals take the auto-segment category, a click-built one the picked category.
        shown_cid = ((self._auto_category_id() if self.proposal_from_bulk and not self.clicks else
                      self._ensure_category()) if shown is not None else None)
        self.proposal_category = None
        queued = self.bulk.pop(self.index, [])
        auto_cid = self._auto_category_id() if queued else None
        self.overview = False
        self._clear_proposal()
        n = 0
        for m, cid in ([(shown, shown_cid)] if shown is not None else []) + [(m, auto_cid) for m in queued]:
            n += bool(self._edit(self.project.add_segment, self.index, m, cid))
        self._persist_bulk(self.index)
        self.status(f"Accepted {n} segment(s)." + (" G fills the thin unlabelled gaps between them." if n > 1 else ""))
        return n

    # ================================================================================ proposal overview
    def toggle_overview(self) -> None:
        """Show all of this image's auto-segment proposals at once (click the wrong ones away, Enter accepts the
        rest), or go back to reviewing them one by one."""
        if self.overview:
            self.overview = False
            self._next_bulk_proposal()
            self.status("Reviewing proposals one by one.")
            return
        if self.proposal is not None and self.proposal_from_bulk and not self.clicks:
            self.bulk.setdefault(self.index, []).insert(0, self.proposal)
            self.proposal = None
        queue = self.bulk.get(self.index) or []
        if not queue or self.clicks:
            self.status("No auto-segment proposals to review on this image." if not queue else
                        "Finish the proposal being built first (Enter or Esc).")
            return
        self.overview = True
        self._overview_colors = {}  # mask key -> colour, kept while proposals are dropped
        self._show_overview()

    def _show_overview(self) -> None:
        queue = self.bulk.get(self.index) or []
        if not queue:
            self.overview = False
            self.canvas.set_proposal(None, [])
            self.status("No proposals left on this image.")
        else:
            # Each proposal keeps its colour while others are dropped: colours follow the mask, not its place.
            colors = getattr(self, "_overview_colors", None)
            if colors is None:
                colors = self._overview_colors = {}
            keys = [mask_key(m) for m in queue]
            for key in keys:
                if key not in colors:
                    colors[key] = segment_color(len(colors) * 7 + 3)
            self.canvas.set_proposal(compose_proposals(queue, self.image.shape[:2],
                                                       colors=[colors[k] for k in keys]), [])
            self.status(f"{len(queue)} proposals: click a wrong one to drop it; Enter accepts all the rest; "
                        "V or Esc reviews them one by one.")
        self._update_tool_panel()
        self.proposal_changed.emit()

    def _drop_overview_proposal(self, x: int, y: int) -> None:
        queue = self.bulk.get(self.index) or []
        hit = [k for k, m in enumerate(queue) if m[y, x]]
        if not hit:
            self.status("No proposal there; click inside a coloured proposal to drop it.")
            return
        queue.pop(hit[0])
        self._persist_bulk(self.index)
        self._show_overview()

    def _proposal_counts(self) -> dict:
        """Image index -> number of auto-segment proposals not reviewed yet (the one shown included)."""
        counts = {i: len(q) for i, q in self.bulk.items()}
        if self.proposal is not None and self.proposal_from_bulk:
            counts[self.index] = counts.get(self.index, 0) + 1
        return {i: n for i, n in counts.items() if n}

    def _refresh_proposal_counts(self) -> None:
        if self.project is None:
            return
        imgs = self.project.images
        self.images_panel.set_proposal_counts([e.name for e in imgs], [e.labelled_fraction() for e in imgs],
                                              self._proposal_counts())

    def _persist_bulk(self, index: int) -> None:
        """Write image `index`'s unreviewed proposals (the one shown and the queue) into the project, so a quit
        or crash mid-review loses none; a failed write is reported, the queue stays in memory."""
        if self.project is None or not 0 <= index < len(self.project.images):
            return
        if self.project.read_only:  # a viewer writes nothing; its proposals live in memory only
            return
        shown = [self.proposal] if (index == self.index and self.proposal is not None and self.proposal_from_bulk
                                    and not self.clicks) else []
        try:
            self.project.set_proposals(index, shown + list(self.bulk.get(index, [])))
        except (OSError, ValueError) as exc:
            self.status(f"Could not save the proposals of image {index + 1}: {exc}")
        self._refresh_proposal_counts()

    def _next_bulk_proposal(self) -> None:
        queue = self.bulk.get(self.index)
        if self.proposal is not None or self.clicks or not queue:
            if queue is not None and not queue:
                self.bulk.pop(self.index, None)
            self._update_tool_panel()
            if not (self.proposal is not None and self.proposal_from_bulk):
                self._persist_bulk(self.index)  # the last reviewed one is gone from disk too
            return
        unl = self.entry.unlabelled_mask()
        while queue:
            m = queue.pop(0) & unl
            if m.any():
                self.proposal = m
                self.proposal_category = None  # each auto-segment proposal starts uncategorised
                self.proposal_score = None  # full-image segmentation keeps no per-segment score
                self.proposal_from_bulk = True
                break
        if not queue:
            self.bulk.pop(self.index, None)
        self._show_proposal()
        self._persist_bulk(self.index)

    # ================================================================================ selection edits
    def merge_selected(self) -> None:
        if len(self.selected) != 2:
            self.status("Select exactly two segments (click one, Ctrl+click the other) to merge.")
            return
        keep, other = self.selected
        self._edit(self.project.merge_segments, self.index, keep, other)
        self.selected = [keep]
        self.status(f"Merged segment {other} into {keep}.")

    def delete_selected(self) -> None:
        if not self.selected:
            self.status("Nothing selected (click a labelled segment to select it).")
            return
        for sid in list(self.selected):
            self._edit(self.project.delete_segment, self.index, sid)
        self.status(f"Deleted segment(s) {', '.join(map(str, self.selected))}.")
        self.selected = []

    def fill_gaps(self) -> None:
        """Give the thin unlabelled slivers between segments to the nearest segment; one undo step."""
        if self.entry is None:
            return
        h, w = self.image.shape[:2]
        width = default_gap_width(h, w)
        filled = self._edit(self.project.fill_gaps, self.index, width)
        if filled is None:
            return
        if filled:
            self.status(f"Filled {filled} pixels of gaps narrower than about {2 * width} px with the nearest "
                        "segment (Ctrl+Z undoes).")
        else:
            self.status(f"No unlabelled gap narrower than about {2 * width} px next to a segment.")

    # ================================================================================ brush / eraser
    def on_stroke(self, x: int, y: int, finished: bool) -> None:
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        if self._stroke is None:
            self._stroke = np.zeros((h, w), np.uint8)
            self._stroke_last = None
        r = max(1, self.brush_radius)
        if self._stroke_last is None:
            cv2.circle(self._stroke, (x, y), r, 1, -1)
        else:
            cv2.line(self._stroke, self._stroke_last, (x, y), 1, 2 * r + 1)
        self._stroke_last = (x, y)
        prev = np.zeros((h, w, 4), np.uint8)
        prev[self._stroke > 0] = (255, 80, 80, 110) if self.tool == "erase" else (80, 255, 80, 110)
        self.canvas.set_stroke(prev)
        if finished:
            stroke = self._stroke > 0
            self._stroke = None
            self._stroke_last = None
            self.canvas.set_stroke(None)
            self.apply_stroke(stroke, erase=self.tool == "erase")

    def apply_stroke(self, stroke: np.ndarray, erase: bool) -> None:
        """Paint into the proposal if one is shown, else into the single selected segment."""
        if self.proposal is not None:
            if erase:
                self.proposal = self.proposal & ~stroke
            else:
                self.proposal = self.proposal | (stroke & self.entry.unlabelled_mask())
            self._show_proposal()
        elif len(self.selected) == 1:
            self._edit(self.project.paint, self.index, self.selected[0], stroke, erase=erase)
        elif not erase:
            # Nothing selected: the stroke starts a hand-painted proposal (works without a model too).
            self.proposal = stroke & self.entry.unlabelled_mask()
            self.proposal_score = None  # painted by hand: nothing scored it
            self.proposal_from_bulk = False
            self._show_proposal()
        else:
            self.status("Eraser: select one segment (click it) or build a proposal first.")

    # ================================================================================ undo
    def undo(self) -> None:
        if self.proposal is not None or self.clicks:
            # Undo inside a proposal: drop the last click first (feels natural while refining).
            self._undo_click()
            return
        if self.project is None:
            return
        what = self.project.undo_description()
        if self._edit(self.project.undo) is False:
            self.status("Nothing to undo.")
        elif what:
            self.status(f"Undid: {what}.")

    def _undo_click(self) -> None:
        if self.clicks:
            self.clicks.pop()
        if self.clicks:
            self._request_prediction()
        else:
            self._clear_proposal()
            self._next_bulk_proposal()

    def redo(self) -> None:
        if self.project is None:
            return
        what = self.project.redo_description()
        if self._edit(self.project.redo) is False:
            self.status("Nothing to redo.")
        elif what:
            self.status(f"Redid: {what}.")
