"""GUI tests (pytest-qt, offscreen): drive the real window with mouse clicks and keys.

A small fake segmenter with the Segmenter API stands in for the net so the tests are fast and exact: its
proposal is the union of disks around positive clicks minus disks around negative clicks, inside the ROI.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PyQt5.QtCore import QElapsedTimer, Qt, QTimer

from annotator.document import Project, ProjectError

RADIUS = 12


class FakeSegmenter:
    """Same methods as model.Segmenter; ``delay`` makes predict slow (time.sleep releases the GIL like torch)."""

    device = "fake-cpu"

    def __init__(self, delay: float = 0.0, steps: int = 4, step_delay: float = 0.0) -> None:
        self.delay = delay
        self.steps = steps
        self.step_delay = step_delay
        self.calls: list = []
        self.segment_calls: list = []  # (steps run, cancelled)

    def predict(self, image, clicks, roi=None):
        self.calls.append(list(clicks))
        if self.delay:
            time.sleep(self.delay)
        h, w = image.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        mask = np.zeros((h, w), bool)
        for x, y, positive in clicks:
            disk = (xx - x) ** 2 + (yy - y) ** 2 <= RADIUS**2
            mask = mask | disk if positive else mask & ~disk
        if roi is not None:
            mask &= roi
        return SimpleNamespace(mask=mask, score=0.8)

    def segment_image(self, image, roi=None, progress=None):
        """Vertical strips, one per step; stops early (partial map) when progress returns False."""
        h, w = image.shape[:2]
        labels = np.zeros((h, w), np.int32)
        done = 0
        cancelled = False
        for k in range(self.steps):
            if self.step_delay:
                time.sleep(self.step_delay)
            labels[:, k * w // self.steps:(k + 1) * w // self.steps] = k + 1
            done += 1
            if progress is not None and progress(done / self.steps) is False:
                cancelled = True
                break
        if roi is not None:
            labels[~roi] = 0
        self.segment_calls.append((done, cancelled))
        return labels


def make_image(path: Path, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rgb = np.random.RandomState(seed).randint(0, 255, (h, w, 3), np.uint8)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


@pytest.fixture
def project(tmp_path):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    make_image(img_dir / "a.png", seed=0)
    make_image(img_dir / "b.png", seed=1)
    return Project.new(img_dir, tmp_path / "proj")


def make_window(qtbot, project=None, segmenter=None, **kw):
    from annotator._qt.main_window import MainWindow

    win = MainWindow(project, segmenter=segmenter if segmenter is not None else FakeSegmenter(),
                     confirm_dialogs=False, **kw)
    qtbot.addWidget(win)
    win.resize(900, 600)
    win.show()
    qtbot.waitExposed(win)
    win.canvas.fit()
    return win


def click(qtbot, win, x, y, button=Qt.LeftButton, modifier=Qt.NoModifier):
    """A real mouse click on the canvas viewport at image pixel (x, y)."""
    pos = win.canvas.image_to_widget(x, y)
    qtbot.mouseClick(win.canvas.viewport(), button, modifier, pos)


def wait_proposal(qtbot, win, timeout=5000):
    qtbot.waitUntil(lambda: win.pending is None and win.proposal is not None, timeout=timeout)
    return win.proposal


def overlay_pixel(win, x, y):
    return np.asarray(win.canvas.overlay_item.image)[y, x]


# ------------------------------------------------------------------------------------------------- click flow
def test_click_accept_undo_redo(qtbot, project):
    win = make_window(qtbot, project)
    entry = project.images[0]
    click(qtbot, win, 40, 50)
    mask = wait_proposal(qtbot, win)
    assert mask[50, 40] and mask.sum() > 100
    assert win.canvas.proposal_visible
    # the proposal overlay is drawn where the mask is
    assert np.asarray(win.canvas.proposal_item.image)[50, 40, 3] > 0
    assert np.asarray(win.canvas.proposal_item.image)[5, 120, 3] == 0

    qtbot.keyClick(win, Qt.Key_Return)
    assert win.proposal is None and not win.canvas.proposal_visible
    assert len(entry.segments) == 1
    sid = next(iter(entry.segments))
    assert entry.labels[50, 40] == sid
    assert np.array_equal(entry.labels == sid, mask)
    # the overlay is refreshed from the document event: coloured (one colour per segment by default; K: by
    # category), no hatch, on the segment
    from annotator._qt.canvas import segment_color

    cat = project.category(entry.segments[sid].category_id)
    qtbot.waitUntil(lambda: tuple(overlay_pixel(win, 40, 50)[:3]) == segment_color(sid))
    qtbot.keyClick(win, Qt.Key_K)
    qtbot.waitUntil(lambda: tuple(overlay_pixel(win, 40, 50)[:3]) == tuple(cat.color))
    # saved already (autosave): a fresh open sees it
    assert len(Project.open(project.project_dir, read_only=True).images[0].segments) == 1

    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert entry.segments == {} and not entry.labels.any()
    assert "Undid: add segment on a.png" in win.statusBar().currentMessage()
    qtbot.waitUntil(lambda: tuple(overlay_pixel(win, 40, 50)[:3]) != tuple(cat.color))
    qtbot.keyClick(win, Qt.Key_Y, Qt.ControlModifier)
    assert len(entry.segments) == 1 and entry.labels[50, 40] != 0
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)  # nothing more to redo
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)  # redo
    assert len(entry.segments) == 1


def test_negative_click_changes_proposal(qtbot, project):
    seg = FakeSegmenter()
    win = make_window(qtbot, project, seg)
    click(qtbot, win, 40, 50)
    first = wait_proposal(qtbot, win).copy()
    click(qtbot, win, 48, 50, Qt.RightButton)
    qtbot.waitUntil(lambda: win.pending is None and not np.array_equal(win.proposal, first), timeout=5000)
    assert not win.proposal[50, 48] and win.proposal[50, 30]
    assert win.proposal.sum() < first.sum()
    assert seg.calls[-1] == [(40, 50, True), (48, 50, False)]
    # Shift+click is negative too
    second = win.proposal.copy()
    click(qtbot, win, 32, 50, Qt.LeftButton, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: win.pending is None and not np.array_equal(win.proposal, second), timeout=5000)
    assert seg.calls[-1][-1] == (32, 50, False)
    # Ctrl+Z while refining takes back the last click (the proposal is recomputed without it)
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    qtbot.waitUntil(lambda: win.pending is None and np.array_equal(win.proposal, second), timeout=5000)
    assert len(win.clicks) == 2 and project.images[0].segments == {}
    # Esc rejects: nothing stored (keys typed on the focused canvas reach the window's shortcuts)
    qtbot.keyClick(win.canvas, Qt.Key_Escape)
    assert win.proposal is None and project.images[0].segments == {}


def test_roi_excludes_labelled_pixels_and_click_selects(qtbot, project):
    win = make_window(qtbot, project)
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_A)  # A accepts while a proposal is shown
    entry = project.images[0]
    assert len(entry.segments) == 1 and win.index == 0
    click(qtbot, win, 60, 50)  # overlaps the first disk: the proposal must stay in the unlabelled area
    mask = wait_proposal(qtbot, win)
    assert mask[50, 60] and not (mask & (entry.labels != 0)).any()
    qtbot.keyClick(win, Qt.Key_Return)
    assert len(entry.segments) == 2
    # a click on a labelled pixel with no proposal selects that segment
    sid1 = int(entry.labels[50, 40])
    click(qtbot, win, 40, 50)
    assert win.selected == [sid1] and win.proposal is None and win.pending is None
    # Ctrl+click adds the other one, M merges
    sid2 = int(entry.labels[50, 70])
    click(qtbot, win, 70, 50, Qt.LeftButton, Qt.ControlModifier)
    assert win.selected == [sid1, sid2]
    qtbot.keyClick(win, Qt.Key_M)
    assert set(entry.segments) == {sid1} and entry.labels[50, 70] == sid1
    # Delete removes it
    qtbot.keyClick(win, Qt.Key_Delete)
    assert entry.segments == {} and not entry.labels.any()
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert set(entry.segments) == {sid1}


def test_brush_and_eraser_edit_selected_segment(qtbot, project):
    win = make_window(qtbot, project)
    entry = project.images[0]
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    sid = int(entry.labels[50, 40])
    click(qtbot, win, 40, 50)  # select
    assert win.selected == [sid]
    win.brush_radius = 3
    qtbot.keyClick(win, Qt.Key_B)
    assert win.canvas.view.tool == "brush"
    assert entry.labels[50, 100] == 0
    click(qtbot, win, 100, 50)  # a brush dab
    assert entry.labels[50, 100] == sid
    qtbot.keyClick(win, Qt.Key_E)
    click(qtbot, win, 40, 50)  # erase a dab in the middle
    assert entry.labels[50, 40] == 0 and entry.labels[50, 30] == sid


def test_stale_predictions_are_superseded(qtbot, project):
    seg = FakeSegmenter(delay=0.3)
    win = make_window(qtbot, project, seg)
    for x in (20, 60, 100):
        click(qtbot, win, x, 50)  # three clicks faster than one prediction
    mask = wait_proposal(qtbot, win)
    assert [c[:2] for c in win.clicks] == [(20, 50), (60, 50), (100, 50)]
    assert mask[50, 20] and mask[50, 60] and mask[50, 100]  # the shown result is the latest request's
    assert len(seg.calls) < 3 and win.worker.worker.dropped >= 1  # queued stale requests never ran


def test_event_loop_keeps_ticking_during_prediction(qtbot, project):
    seg = FakeSegmenter(delay=0.5)
    win = make_window(qtbot, project, seg)
    gaps = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.timeout.connect(tick)
    timer.start(10)
    click(qtbot, win, 40, 50)
    qtbot.waitUntil(lambda: len(seg.calls) == 1)  # the worker is inside predict now
    t0 = len(gaps)
    wait_proposal(qtbot, win)
    timer.stop()
    during = gaps[t0:]
    assert len(during) >= 20  # ~500 ms of 10 ms ticks were served while the net ran
    assert max(during) < 50, f"event loop stalled {max(during)} ms"


# ------------------------------------------------------------------------------------------------- bulk
def test_auto_segment_cancel(qtbot, project):
    seg = FakeSegmenter(steps=40, step_delay=0.05)
    win = make_window(qtbot, project, seg)
    with qtbot.waitSignal(win.bulk_finished, timeout=10000) as blocker:
        win.auto_segment()
        assert win._progress is not None and win._progress.isVisible()
        qtbot.waitUntil(lambda: win._progress is not None and win._progress.value() > 0, timeout=5000)
        win._progress.findChild(type(win.tools_panel.accept_btn)).click()  # the dialog's Cancel button
    assert blocker.args == [True]
    qtbot.waitUntil(lambda: len(seg.segment_calls) == 1, timeout=5000)
    done, cancelled = seg.segment_calls[0]
    assert cancelled and done < 40  # the worker stopped early through the progress callback
    assert win.bulk == {} and win.proposal is None and project.images[0].segments == {}
    assert win._progress is None


def test_auto_segment_review(qtbot, project):
    seg = FakeSegmenter(steps=4)
    win = make_window(qtbot, project, seg)
    entry = project.images[0]
    with qtbot.waitSignal(win.bulk_finished, timeout=10000) as blocker:
        win.auto_segment()
    assert blocker.args == [False]
    assert win.proposal is not None and win.proposal_from_bulk and len(win.bulk[0]) == 3
    first = win.proposal.copy()
    qtbot.keyClick(win, Qt.Key_Escape)  # reject the first: next one is shown
    assert not np.array_equal(win.proposal, first) and entry.segments == {}
    qtbot.keyClick(win, Qt.Key_Return)  # accept one
    assert len(entry.segments) == 1 and win.proposal is not None
    qtbot.keyClick(win, Qt.Key_Return, Qt.ShiftModifier)  # accept all remaining
    assert len(entry.segments) == 3 and win.proposal is None and 0 not in win.bulk
    assert (entry.labels[first] == 0).all()  # the rejected strip stayed unlabelled
    assert entry.labelled_fraction() == pytest.approx(0.75, abs=0.01)


def test_auto_segment_all_images(qtbot, project):
    win = make_window(qtbot, project, FakeSegmenter(steps=2))
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment_all()
    assert set(win.bulk) | {0} == {0, 1}  # image 0's first proposal is on screen, image 1's are queued
    qtbot.keyClick(win, Qt.Key_D)
    assert win.index == 1 and win.proposal is not None
    qtbot.keyClick(win, Qt.Key_Return, Qt.ShiftModifier)
    assert project.images[1].labelled_fraction() == pytest.approx(1.0)
    qtbot.keyClick(win, Qt.Key_A)  # no proposal: previous image
    assert win.index == 0


# ------------------------------------------------------------------------------------------------- categories
def test_categories_add_pick_rename_recolor(qtbot, project):
    win = make_window(qtbot, project)
    cid = win.add_category("tree", (10, 200, 30), isthing=False)
    assert win.categories_panel.list.count() == 2
    qtbot.keyClick(win, Qt.Key_1)
    assert win.category_id == project.categories[0].id
    qtbot.keyClick(win, Qt.Key_2)
    assert win.category_id == cid
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    seg = next(iter(project.images[0].segments.values()))
    assert seg.category_id == cid
    win.rename_category(cid, "forest")
    qtbot.waitUntil(lambda: "forest" in win.categories_panel.list.item(1).text())
    win.recolor_category(cid, (0, 0, 255))
    qtbot.waitUntil(lambda: tuple(overlay_pixel(win, 40, 50)[:3]) == (0, 0, 255))
    # picking a category with a segment selected re-labels it
    click(qtbot, win, 40, 50)
    qtbot.keyClick(win, Qt.Key_1)
    assert win.selected == [seg.id]
    assert project.images[0].segments[seg.id].category_id == project.categories[0].id


def test_image_list_progress_and_navigation(qtbot, project):
    win = make_window(qtbot, project)
    assert win.images_panel.list.count() == 2
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    frac = project.images[0].labelled_fraction()
    qtbot.waitUntil(lambda: win.images_panel.list.item(0).text().strip().startswith(f"{frac * 100:.1f}%"))
    qtbot.keyClick(win, Qt.Key_PageDown)
    assert win.index == 1 and win.images_panel.list.currentRow() == 1
    qtbot.keyClick(win, Qt.Key_PageUp)
    assert win.index == 0


def test_help_overlay_toggles(qtbot, project):
    win = make_window(qtbot, project)
    assert not win.overlay_help.isVisible()
    qtbot.keyClick(win, Qt.Key_Question, Qt.ShiftModifier, )
    assert win.overlay_help.isVisible()
    qtbot.keyClick(win.overlay_help, Qt.Key_Escape)
    assert not win.overlay_help.isVisible()



def test_the_help_lists_every_key_the_window_answers_and_matches_the_readme(qtbot, project):
    """A key that does something is in the '?' overlay (V, K, W, the brush keys and zoom were missing), and the
    README's shortcut table is the overlay's list, row for row."""
    from PyQt5.QtWidgets import QLabel

    from annotator._qt.shortcuts import SHORTCUTS

    win = make_window(qtbot, project)
    cells = re.findall(r"<b>(.*?)</b>", win.overlay_help.findChild(QLabel).text())
    listed = set(cells) | {token for cell in cells for token in cell.split(", ")}
    for keys in ("V", "K", "W", ", / .", "+ / -", "Tab", "Ctrl+O", "Ctrl+Q", "F1", "[ / ]", "H", "1 - 9"):
        assert keys in listed, keys
    # The keys really act: K switches the colouring, W the ROI, '.' grows the brush, V opens the overview.
    before = (win.color_by, win.roi_mode, win.brush_radius)
    for key in (Qt.Key_K, Qt.Key_W, Qt.Key_Period):
        qtbot.keyClick(win, key)
    assert win.color_by != before[0] and win.roi_mode != before[1] and win.brush_radius > before[2]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8").splitlines()
    start = readme.index("| keys | action |") + 2
    rows = []
    for line in readme[start:]:
        if not line.startswith("|"):
            break
        rows.append(tuple(cell.strip() for cell in line.strip("|").split(" | ")))
    assert rows == [(k, v) for k, v in SHORTCUTS]


# ------------------------------------------------------------------------------------------------- export / bad input
def test_export_then_import_identical(qtbot, project, tmp_path):
    win = make_window(qtbot, project)
    win.add_category("sky", isthing=False)
    for x, key in ((30, Qt.Key_1), (90, Qt.Key_2)):
        qtbot.keyClick(win, key)
        click(qtbot, win, x, 40)
        wait_proposal(qtbot, win)
        qtbot.keyClick(win, Qt.Key_Return)
    out = tmp_path / "export"
    json_path = win.export_panoptic(str(out), instances=True)
    assert json_path and os.path.isfile(json_path) and (out / "instances.json").is_file()
    assert win.import_panoptic(json_path, image_dir=str(tmp_path / "images"), project_dir=str(tmp_path / "re"))
    re = win.project
    assert re is not project and re.project_dir == (tmp_path / "re").resolve()
    assert [(c.id, c.name, c.isthing) for c in re.categories] == [(c.id, c.name, c.isthing) for c in project.categories]
    for a, b in zip(project.images, re.images):
        assert np.array_equal(a.labels, b.labels)
        assert {s.id: s.category_id for s in a.segments.values()} == {s.id: s.category_id for s in b.segments.values()}
    assert win.images_panel.list.count() == len(re.images)


def test_an_export_cancelled_from_its_progress_dialog_writes_nothing(qtbot, project, tmp_path, monkeypatch):
    """Every export runs with a progress dialog; Cancel there stops it, says so, and leaves the folder empty."""
    from PyQt5.QtWidgets import QProgressDialog

    win = make_window(qtbot, project)
    click(qtbot, win, 30, 40)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    seen = []

    def cancelled(dialog):
        seen.append(dialog.labelText())
        return True

    monkeypatch.setattr(QProgressDialog, "wasCanceled", cancelled)
    for export, name in ((win.export_panoptic, "panoptic"), (win.export_labelme, "labelme"),
                         (win.export_yolo, "yolo")):
        out = tmp_path / name
        assert export(str(out)) is None
        assert not out.exists() or not any(out.iterdir()), name
        assert "Export cancelled" in win.statusBar().currentMessage()
    assert win.export_instances(str(tmp_path / "inst.json")) is None and not (tmp_path / "inst.json").exists()
    assert seen and all(": 1 of " in text for text in seen)  # cancelled at the first image (YOLO: labelled ones only)
    monkeypatch.undo()
    assert win.export_labelme(str(tmp_path / "labelme")) and win.export_dialog is None
    json_path = win.export_panoptic(str(tmp_path / "panoptic"), instances=False)
    # Imports too: cancelled, no project is made and the open one stays.
    monkeypatch.setattr(QProgressDialog, "wasCanceled", cancelled)
    assert not win.import_labelme(str(tmp_path / "labelme"), project_dir=str(tmp_path / "from_labelme"))
    assert not win.import_panoptic(json_path, image_dir=str(tmp_path / "images"), project_dir=str(tmp_path / "re"))
    assert "Import cancelled" in win.statusBar().currentMessage() and win.project is project
    assert not (tmp_path / "from_labelme").exists() and not (tmp_path / "re").exists()


def test_unreadable_image_skipped_with_message(qtbot, tmp_path):
    from annotator._qt.main_window import MainWindow

    d = tmp_path / "imgs"
    d.mkdir()
    make_image(d / "good.png")
    (d / "broken.jpg").write_bytes(b"not an image")
    win = make_window(qtbot)
    assert win.open_path(str(d))
    assert len(win.project.images) == 1
    assert any("broken.jpg" in m for m in win.messages)
    assert "broken.jpg" in win.statusBar().currentMessage() or any("broken" in m for m in win.messages)
    assert isinstance(win, MainWindow)


def test_malformed_project_reported_and_untouched(qtbot, project):
    path = project.project_dir / "project.json"
    data = json.loads(path.read_text())
    data["images"][0]["width"] = "wide"
    bad = json.dumps(data).encode()
    path.write_bytes(bad)
    mtime = path.stat().st_mtime_ns
    win = make_window(qtbot)
    assert not win.open_path(str(project.project_dir))
    assert win.project is None
    assert any("project.json" in m and "width" in m for m in win.messages)
    assert path.read_bytes() == bad and path.stat().st_mtime_ns == mtime
    with pytest.raises(ProjectError, match="width"):
        Project.open(project.project_dir, read_only=True)


def test_missing_weights_reported_manual_editing_works(qtbot, project):
    def broken():
        raise ValueError("resources/weights.safetensors: file is missing")

    from annotator._qt.main_window import MainWindow

    win = MainWindow(project, segmenter_factory=broken, confirm_dialogs=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: "no model" in win.status_device.text(), timeout=5000)
    assert any("weights.safetensors" in m for m in win.messages)
    click(qtbot, win, 40, 50)  # does not crash; no proposal comes
    qtbot.waitUntil(lambda: win.pending is None, timeout=5000)
    assert win.proposal is None
    # manual editing still works: paint a segment with the brush and accept it
    win.add_category("manual")
    assert project.categories[-1].name == "manual"
    qtbot.keyClick(win, Qt.Key_B)
    win.brush_radius = 5
    click(qtbot, win, 60, 40)
    assert win.proposal is not None and win.proposal[40, 60]
    qtbot.keyClick(win, Qt.Key_Return)
    seg = project.images[0].segments[int(project.images[0].labels[40, 60])]
    assert project.category(seg.category_id).name == "manual"


def test_drawn_roi_box_limits_proposal(qtbot, project):
    seg = FakeSegmenter()
    win = make_window(qtbot, project, seg)
    qtbot.keyClick(win, Qt.Key_O)
    assert win.canvas.view.tool == "roi"
    win.canvas.view.roi_drawn.emit(30, 40, 45, 60)  # what a drag on the canvas reports
    assert win.roi_mode == "rect" and win.roi_rect == (30, 40, 45, 60) and win.canvas.view.tool == "click"
    click(qtbot, win, 40, 50)
    mask = wait_proposal(qtbot, win)
    ys, xs = np.nonzero(mask)
    assert xs.min() >= 30 and xs.max() < 45 and ys.min() >= 40 and ys.max() < 60
    win.set_roi_mode("whole")
    win.reject_proposal()
    click(qtbot, win, 40, 50)
    assert wait_proposal(qtbot, win).sum() > mask.sum()


def test_wheel_zoom_and_fit(qtbot, project):
    from PyQt5.QtCore import QPoint, QPointF
    from PyQt5.QtGui import QWheelEvent
    from PyQt5.QtWidgets import QApplication

    win = make_window(qtbot, project)
    (x0, x1), _ = win.canvas.view.viewRange()
    pos = QPointF(win.canvas.image_to_widget(64, 48))
    ev = QWheelEvent(pos, QPointF(win.canvas.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 240),
                     Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(win.canvas.viewport(), ev)
    (z0, z1), _ = win.canvas.view.viewRange()
    assert z1 - z0 < 0.9 * (x1 - x0)  # zoomed in
    qtbot.keyClick(win, Qt.Key_F)
    (f0, f1), _ = win.canvas.view.viewRange()
    assert f1 - f0 == pytest.approx(x1 - x0, rel=0.05)


def test_undo_jumps_to_the_edited_image(qtbot, project):
    win = make_window(qtbot, project)
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    qtbot.keyClick(win, Qt.Key_D)
    assert win.index == 1
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert project.images[0].segments == {}
    qtbot.waitUntil(lambda: win.index == 0)


def test_failed_autosave_is_reported_not_fatal(qtbot, project, monkeypatch):
    win = make_window(qtbot, project)
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)

    def full_disk():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project, "save", full_disk)
    qtbot.keyClick(win, Qt.Key_Return)
    assert any("No space left" in m for m in win.messages)
    assert win.isVisible()


def test_reclick_inside_auto_proposal_refines_it(qtbot, project):
    win = make_window(qtbot, project, FakeSegmenter(steps=4))
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment()
    strip = win.proposal.copy()
    queued = len(win.bulk[0])
    ys, xs = np.nonzero(strip)
    x, y = int(xs.mean()), int(ys.mean())
    click(qtbot, win, x, y)  # re-click inside: the net's answer for that click replaces the strip
    mask = wait_proposal(qtbot, win)
    assert mask[y, x] and not np.array_equal(mask, strip) and win.clicks == [(x, y, True)]
    qtbot.keyClick(win, Qt.Key_Return)
    entry = project.images[0]
    assert np.array_equal(entry.labels > 0, mask)
    assert win.proposal is not None and win.proposal_from_bulk  # the next queued strip is up for review
    assert len(win.bulk.get(0, [])) == queued - 1


def test_opacity_and_hatch_keys_change_overlay(qtbot, project):
    win = make_window(qtbot, project)
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    qtbot.waitUntil(lambda: win.project.images[0].labels[50, 40] > 0 and overlay_pixel(win, 40, 50)[3] > 0)
    a0 = int(overlay_pixel(win, 40, 50)[3])
    qtbot.keyClick(win, Qt.Key_BracketRight)
    assert int(overlay_pixel(win, 40, 50)[3]) > a0
    unl = win.project.images[0].labels == 0
    hatched = np.asarray(win.canvas.overlay_item.image)[..., 3][unl].max()
    qtbot.keyClick(win, Qt.Key_H)
    assert not win.hatch and np.asarray(win.canvas.overlay_item.image)[..., 3][unl].max() < hatched
