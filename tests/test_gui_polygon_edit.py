"""The polygon editor driven as a person does (headless): select a segment, P, drag a vertex with the mouse,
Enter, the mask checked, Ctrl+Z; edges clicked to add vertices, Delete, Esc."""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QEvent, QPoint, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import QApplication
from PyQt5.QtTest import QTest

from test_gui import click, make_window, project  # noqa: F401


def _square_with_hole() -> np.ndarray:
    m = np.zeros((96, 128), bool)
    m[20:70, 20:70] = True
    m[38:50, 38:50] = False
    return m


def _setup(qtbot, project):  # noqa: F811
    cid = project.categories[0].id
    sid = project.add_segment(0, _square_with_hole(), cid)
    other = np.zeros((96, 128), bool)
    other[20:70, 80:110] = True
    oid = project.add_segment(0, other, cid)
    win = make_window(qtbot, project)
    click(qtbot, win, 25, 25)  # a click on a labelled pixel selects its segment
    assert win.selected == [sid]
    qtbot.keyClick(win, Qt.Key_P)
    assert win.polygon_edit is not None and win.polygon_item is not None
    assert win.polygon_item.scene() is win.canvas.scene()
    return win, sid, oid


def _drag(qtbot, win, a, b, steps=6):
    """A real left-button drag on the canvas from image point a to b (pixel coordinates of vertices)."""
    vp = win.canvas.viewport()
    pa, pb = win.canvas.image_to_widget(*a), win.canvas.image_to_widget(*b)
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, pa)
    for k in range(1, steps + 1):
        p = QPoint(round(pa.x() + (pb.x() - pa.x()) * k / steps), round(pa.y() + (pb.y() - pa.y()) * k / steps))
        QApplication.sendEvent(vp, QMouseEvent(QEvent.MouseMove, p, Qt.NoButton, Qt.LeftButton, Qt.NoModifier))
        qtbot.wait(10)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, pb)


def test_drag_a_vertex_accept_writes_one_undo_step_and_undo_restores(qtbot, project):  # noqa: F811
    win, sid, oid = _setup(qtbot, project)
    entry = project.images[0]
    before = np.array(entry.labels)
    edit = win.polygon_edit
    outer = next(k for k, r in enumerate(edit.rings) if not r.hole)
    corner = min(range(len(edit.rings[outer].points)), key=lambda k: tuple(edit.rings[outer].points[k]))
    x, y = edit.rings[outer].points[corner]
    assert (x, y) == (20, 20)
    _drag(qtbot, win, (x, y), (x - 12, y - 10))
    moved = edit.rings[outer].points[corner]
    assert np.hypot(*(moved - (8, 10))) < 1.0, moved  # the vertex followed the mouse
    expected = edit.to_mask()
    steps = len(project._undo)
    qtbot.keyClick(win, Qt.Key_Return)
    assert win.polygon_edit is None and win.polygon_item is None
    after = np.array(entry.labels)
    assert len(project._undo) == steps + 1
    assert np.array_equal(after == sid, expected)
    grown = (after == sid) & (before != sid)
    assert grown.any() and not grown[20:, 20:].any()  # only up and left of the dragged corner
    assert (after == sid)[38:50, 38:50].sum() == 0 and np.array_equal(after == oid, before == oid)
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert np.array_equal(np.array(entry.labels), before)


def test_click_an_edge_adds_a_vertex_delete_removes_it_esc_changes_nothing(qtbot, project):  # noqa: F811
    win, sid, oid = _setup(qtbot, project)
    entry = project.images[0]
    before = np.array(entry.labels)
    edit = win.polygon_edit
    n = edit.vertex_count
    click(qtbot, win, 45, 20)  # on the top edge, between two corners
    assert edit.vertex_count == n + 1 and win.polygon_item.selected is not None
    ring, k = win.polygon_item.selected
    assert np.hypot(*(edit.rings[ring].points[k] - (45, 20))) < 1.0
    assert not edit.changed  # a vertex on the edge changes no pixel
    qtbot.keyClick(win, Qt.Key_Delete)
    assert edit.vertex_count == n
    qtbot.keyClick(win, Qt.Key_D)  # blocked while editing: the image stays
    assert win.index == 0 and win.polygon_edit is edit
    _drag(qtbot, win, (20, 20), (30, 30))
    assert edit.changed
    qtbot.keyClick(win, Qt.Key_Escape)
    assert win.polygon_edit is None
    assert np.array_equal(np.array(entry.labels), before)
    assert project.undo_description() == "add segment on a.png"  # nothing was written


def test_p_needs_one_selected_segment(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project)
    qtbot.keyClick(win, Qt.Key_P)
    assert win.polygon_edit is None and "Select one segment" in win.statusBar().currentMessage()
