"""P: the selected segment's outline as polygons with draggable vertices over the canvas (a thin view of
annotator.polygon_edit.PolygonEdit); Enter writes it back as one undo step (Project.set_segment_mask), Esc
drops it.

Mouse: drag a vertex to move it; drag (or click) an edge to add a vertex there; right click a vertex (or
select it and press Delete / Backspace) to delete it; a drag away from the outline pans as usual. Ctrl+Z undoes
the last vertex edit while the editor is open.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QPen, QPolygonF

from annotator.polygon_edit import PolygonEdit

OUTLINE = QColor(255, 230, 0)
HOLE = QColor(255, 120, 0)
HANDLE_PX = 7        # vertex handle side, screen pixels
HIT_PX = 8           # how near (screen pixels) a press must be to grab a vertex or an edge


class PolygonItem(pg.GraphicsObject):
    """Draws the rings and their vertex handles (constant screen size at any zoom) and turns presses into
    PolygonEdit operations. Item coordinates are the view's: pixel (x, y)'s centre at (x + 0.5, y + 0.5)."""

    def __init__(self, edit: PolygonEdit, view: pg.ViewBox, changed: Callable[[], None]) -> None:
        super().__init__()
        self.edit = edit
        self.view = view
        self.changed = changed
        self.selected: Optional[tuple[int, int]] = None  # (ring, vertex)
        self.hovered: Optional[tuple[int, int]] = None
        self._drag: Optional[tuple[int, int]] = None
        self.setAcceptHoverEvents(True)

    # ----------------------------------------------------------------------------------------- drawing
    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt naming): the whole image, so every click comes here
        return QRectF(0, 0, self.edit.width, self.edit.height)

    def paint(self, p, *args) -> None:
        t = p.transform()
        p.save()
        p.resetTransform()  # handles in screen pixels
        for ri, ring in enumerate(self.edit.rings):
            screen = [t.map(QPointF(x + 0.5, y + 0.5)) for x, y in ring.points]
            pen = QPen(HOLE if ring.hole else OUTLINE, 2)
            if ring.hole:
                pen.setStyle(Qt.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.NoBrush)
            p.drawPolygon(QPolygonF(screen))
            p.setPen(QPen(QColor(0, 0, 0), 1))
            for vi, q in enumerate(screen):
                if (ri, vi) == self.selected:
                    p.setBrush(QColor(255, 40, 40))
                    s = HANDLE_PX + 4
                elif (ri, vi) == self.hovered:
                    p.setBrush(QColor(120, 255, 255))
                    s = HANDLE_PX + 2
                else:
                    p.setBrush(QColor(255, 255, 255))
                    s = HANDLE_PX
                p.drawRect(QRectF(q.x() - s / 2, q.y() - s / 2, s, s))
        p.restore()

    # ----------------------------------------------------------------------------------------- hit tests
    def _radius(self) -> float:
        px = self.view.viewPixelSize()[0]
        return HIT_PX * (px if px and np.isfinite(px) else 1.0)

    @staticmethod
    def _image_xy(pos) -> tuple[float, float]:
        return pos.x() - 0.5, pos.y() - 0.5

    def _vertex_at(self, pos) -> Optional[tuple[int, int]]:
        return self.edit.nearest_vertex(*self._image_xy(pos), self._radius())

    def _insert_at(self, pos) -> Optional[tuple[int, int]]:
        """A new vertex on the edge under ``pos``, None if no edge is near."""
        x, y = self._image_xy(pos)
        hit = self.edit.nearest_edge(x, y, self._radius())
        if hit is None:
            return None
        ring, edge, px, py = hit
        return ring, self.edit.insert_vertex_on_edge(ring, edge, px, py)

    # ----------------------------------------------------------------------------------------- operations
    def delete_selected(self) -> Optional[str]:
        """Delete the selected vertex; returns why not (a message) or None."""
        if self.selected is None:
            return "Select a vertex first (click it), then press Delete."
        ring, vi = self.selected
        try:
            self.edit.delete_vertex(ring, vi)
        except ValueError as exc:
            return str(exc)
        n = len(self.edit.rings[ring].points)
        self.selected = (ring, min(vi, n - 1))
        self._after()
        return None

    def _after(self) -> None:
        self.update()
        self.changed()

    # ----------------------------------------------------------------------------------------- mouse
    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() not in (Qt.LeftButton, Qt.RightButton):
            return
        ev.accept()  # no click reaches the canvas while the outline is open (it would select or propose)
        hit = self._vertex_at(ev.pos())
        if ev.button() == Qt.RightButton:
            if hit is not None:
                self.selected = hit
                self.delete_selected()
            return
        if hit is None:
            hit = self._insert_at(ev.pos())
        self.selected = hit
        self._after()

    def mouseDragEvent(self, ev) -> None:  # noqa: N802
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            hit = self._vertex_at(ev.buttonDownPos())
            record = True
            if hit is None:
                hit = self._insert_at(ev.buttonDownPos())
                record = False  # the insert is recorded: insert and drag are undone together
            if hit is None:
                ev.ignore()  # away from the outline: the view pans
                return
            self._drag = self.selected = hit
            self.edit.move_vertex(*hit, *self._image_xy(ev.pos()), record=record)
        elif self._drag is None:
            ev.ignore()
            return
        else:
            self.edit.move_vertex(*self._drag, *self._image_xy(ev.pos()), record=False)
        ev.accept()
        if ev.isFinish():
            self._drag = None
        self._after()

    def hoverEvent(self, ev) -> None:  # noqa: N802
        hovered = None if ev.isExit() else self._vertex_at(ev.pos())
        if hovered != self.hovered:
            self.hovered = hovered
            self.update()


class PolygonEditorMixin:
    """Methods of MainWindow (annotator._qt.main_window): open, accept and cancel the outline editor."""

    polygon_edit: Optional[PolygonEdit] = None
    polygon_segment: Optional[int] = None
    polygon_item: Optional[PolygonItem] = None

    def start_polygon_edit(self) -> bool:
        """P: open the single selected segment's outline for editing; False (and a status message) if not."""
        if self.polygon_edit is not None:
            return True
        entry = self.entry
        if entry is None or self.image is None:
            return False
        if self.proposal is not None or self.clicks or self.overview:
            self.status("Accept or reject the proposal first (Enter / Esc), then press P to edit an outline.")
            return False
        if len(self.selected) != 1:
            self.status("Select one segment (click it), then press P to edit its outline as a polygon.")
            return False
        if self.project.read_only:
            self.status(f"Read-only project: outlines cannot be edited ({self.project.read_only_reason}).")
            return False
        sid = self.selected[0]
        edit = PolygonEdit(entry.segment_mask(sid))
        if not edit.rings:
            self.status(f"Segment {sid} has no outline to edit (lone pixels or one-pixel lines): use the brush.")
            return False
        self.polygon_edit, self.polygon_segment = edit, sid
        self.polygon_item = PolygonItem(edit, self.canvas.view, self._polygon_changed)
        self.polygon_item.setZValue(40)
        self.canvas.view.addItem(self.polygon_item, ignoreBounds=True)
        self.canvas.selection_item.hide()
        self._polygon_changed()
        return True

    def _polygon_changed(self) -> None:
        edit = self.polygon_edit
        if edit is None:
            return
        self.status(f"Outline of segment {self.polygon_segment}: {edit.vertex_count} vertices. Enter accepts, "
                    "Esc cancels.")
        self._update_tool_panel()

    def polygon_hint(self) -> str:
        """The tool panel's text while the outline editor is open."""
        return (f"Outline of segment {self.polygon_segment}: drag vertices; click an edge to add one; right "
                "click / Del removes one. Enter accepts, Esc cancels.")

    def _close_polygon_editor(self) -> None:
        if self.polygon_item is not None:
            self.canvas.view.removeItem(self.polygon_item)
        self.polygon_edit = self.polygon_segment = self.polygon_item = None
        self.canvas.selection_item.show()
        self._update_tool_panel()

    def cancel_polygon_edit(self, quiet: bool = False) -> None:
        """Esc: close the editor, the segment as it was."""
        if self.polygon_edit is None:
            return
        self._close_polygon_editor()
        if not quiet:
            self.status("Outline edit cancelled; the segment is unchanged.")

    def accept_polygon_edit(self) -> bool:
        """Enter: write the edited outline back as the segment (one undo step); True if the editor closed."""
        edit, sid, entry = self.polygon_edit, self.polygon_segment, self.entry
        if edit is None:
            return False
        if entry is None or sid not in entry.segments or not np.array_equal(entry.segment_mask(sid), edit.mask):
            self._close_polygon_editor()
            self.status(f"Segment {sid} changed while its outline was open; nothing written. Press P to edit it "
                        "again.")
            return True
        if not edit.changed:
            self._close_polygon_editor()
            self.status(f"Outline of segment {sid} unchanged.")
            return True
        new = edit.to_mask()
        changed = int(np.count_nonzero(new != edit.mask))
        blocked = self._edit(self.project.set_segment_mask, self.index, sid, new)
        if blocked is None:  # refused (read-only) or not saved: the editor stays open, nothing is lost
            return False
        self._close_polygon_editor()
        text = f"Outline of segment {sid} edited ({changed} px changed; Ctrl+Z undoes)."
        if blocked:
            text += f" {blocked} px inside the new outline belong to other segments and stay theirs."
        self.status(text)
        return True

    def polygon_edit_key(self, ev) -> bool:
        """Keys while the editor is open; True if the key was used (or blocked: edits elsewhere would be lost)."""
        if self.polygon_edit is None:
            return False
        key, mods = ev.key(), ev.modifiers()
        ctrl = bool(mods & Qt.ControlModifier)
        if key in (Qt.Key_Return, Qt.Key_Enter):
            self.accept_polygon_edit()
        elif key == Qt.Key_Escape:
            self.cancel_polygon_edit()
        elif key in (Qt.Key_Delete, Qt.Key_Backspace):
            why = self.polygon_item.delete_selected()
            if why:
                self.status(why)
        elif ctrl and key == Qt.Key_Z and not mods & Qt.ShiftModifier:
            if self.polygon_edit.undo():
                self.polygon_item.selected = None
                self.polygon_item.update()
                self._polygon_changed()
            else:
                self.status("No vertex edit to undo (Esc closes the outline unchanged).")
        elif ctrl and key in (Qt.Key_S, Qt.Key_Q):
            return False
        elif key in (Qt.Key_F, Qt.Key_Plus, Qt.Key_Equal, Qt.Key_Minus, Qt.Key_BracketLeft, Qt.Key_BracketRight,
                     Qt.Key_H, Qt.Key_K, Qt.Key_Question, Qt.Key_F1) and not ctrl:
            return False  # view keys work as usual
        elif key not in (Qt.Key_Shift, Qt.Key_Control, Qt.Key_Alt, Qt.Key_Meta):
            self.status("Editing an outline: Enter accepts it, Esc cancels (other keys wait until then).")
        return True
