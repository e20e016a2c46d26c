"""What the window says and keeps after a rejected box, an empty proposal, auto-segment, colours and errors;
each test failed before its fix."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PyQt5.QtCore import Qt

from test_gui import FakeSegmenter, click, make_window, project, wait_proposal  # noqa: F401


class EmptySegmenter(FakeSegmenter):
    """A net that finds nothing anywhere."""

    def predict(self, image, clicks, roi=None):
        self.calls.append(list(clicks))
        return SimpleNamespace(mask=np.zeros(image.shape[:2], bool), score=0.0)


def test_esc_after_a_box_clears_the_box_and_its_roi(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project)
    qtbot.keyClick(win, Qt.Key_O)
    win.canvas.view.roi_drawn.emit(50, 20, 90, 70)              # as a drag on the canvas emits it
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Escape)
    assert win.proposal is None and win.roi_rect is None and win.roi_mode != "rect"
    assert not win.canvas.roi_item.isVisible()                  # the orange box is gone
    assert win.tools_panel.roi_mode.currentData() != "rect"     # the ROI no longer says "drawn box"
    click(qtbot, win, 20, 50)                                   # outside where the box was
    mask = wait_proposal(qtbot, win)
    assert mask[50, 20] and mask.sum() > 100
    assert win.tools_panel.accept_btn.isEnabled()


def test_a_click_outside_a_drawn_box_says_so(qtbot, project):  # noqa: F811
    seg = FakeSegmenter()
    win = make_window(qtbot, project, seg)
    qtbot.keyClick(win, Qt.Key_O)
    win.canvas.view.roi_drawn.emit(50, 20, 90, 70)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    n = len(seg.calls)
    click(qtbot, win, 20, 50)                                   # the box is still the ROI
    assert len(seg.calls) == n and win.proposal is None         # not sent: the net could put nothing there
    msg = win.statusBar().currentMessage()
    assert "outside" in msg and "box" in msg and "Esc" in msg
    assert not win.tools_panel.accept_btn.isEnabled()


def test_an_empty_proposal_cannot_be_accepted_and_is_reported_truly(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project, EmptySegmenter())
    click(qtbot, win, 40, 50)
    qtbot.waitUntil(lambda: win.pending is None, timeout=5000)
    assert "found nothing" in win.statusBar().currentMessage()
    assert not win.tools_panel.accept_btn.isEnabled()
    assert "0 px" not in win.tools_panel.info.text()
    qtbot.keyClick(win, Qt.Key_Return)
    msg = win.statusBar().currentMessage()
    assert "labelled pixels" not in msg and "nothing" in msg.lower()
    assert len(project.images[0].segments) == 0


def _category_of(project, image_index, x, y):
    entry = project.images[image_index]
    return project.category(entry.segments[int(entry.labels[y, x])].category_id).name


def test_auto_segment_proposals_come_in_uncategorised_not_in_the_picked_category(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project, FakeSegmenter(steps=4))   # 4 vertical strips of 32 px
    car = win.add_category("car")
    assert win.category_id == car
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment()
    assert win.proposal_from_bulk and "Category: uncategorised" in win.tools_panel.info.text()
    qtbot.keyClick(win, Qt.Key_Return)                          # accept the first proposal
    assert _category_of(project, 0, 10, 50) == "uncategorised"
    row = next(r for r, c in enumerate(project.categories) if c.id == car)
    win.pick_category_row(row)                                  # picked for the proposal under review
    assert "Category: car" in win.tools_panel.info.text()
    qtbot.keyClick(win, Qt.Key_Return)
    assert _category_of(project, 0, 40, 50) == "car"
    assert "Category: uncategorised" in win.tools_panel.info.text()   # the next one is undecided again
    qtbot.keyClick(win, Qt.Key_Return, Qt.ShiftModifier)        # accept all the rest
    assert {_category_of(project, 0, x, 50) for x in (70, 110)} == {"uncategorised"}
    # a click-built segment still takes the picked category
    qtbot.keyClick(win, Qt.Key_D)
    win.pick_category_row(row)
    click(qtbot, win, 40, 50)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    assert _category_of(project, 1, 40, 50) == "car"


def test_a_category_chosen_for_auto_segment_is_used_and_remembered(qtbot, project):  # noqa: F811
    from annotator.document import Project

    win = make_window(qtbot, project, FakeSegmenter(steps=2))
    sky = win.add_category("sky")
    win.add_category("car")
    win.choose_auto_segment_category("sky")
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment()
    assert "Category: sky" in win.tools_panel.info.text()
    qtbot.keyClick(win, Qt.Key_Return, Qt.ShiftModifier)
    assert {_category_of(project, 0, x, 50) for x in (10, 100)} == {"sky"}
    assert all(c.name != "uncategorised" for c in project.categories)
    win.close()
    again = Project.open(project.project_dir)
    from annotator.auto_category import chosen_category
    assert chosen_category(again) == sky
    again.close()


def overlay_rgb(win, x, y):
    return tuple(int(v) for v in np.asarray(win.canvas.overlay_item.image)[y, x, :3])


def test_segment_colours_keep_away_from_the_category_swatches(qtbot, project):  # noqa: F811
    from annotator.segment_colors import MIN_DISTANCE, color_distance

    win = make_window(qtbot, project)
    for name in ("person", "car", "tree", "sky"):
        win.add_category(name)
    swatches = [c.color for c in project.categories]
    for x in (15, 45, 75, 105):                                 # four segments, ids 1-4
        click(qtbot, win, x, 50)
        wait_proposal(qtbot, win)
        qtbot.keyClick(win, Qt.Key_Return)
    entry = project.images[0]
    assert len(entry.segments) == 4
    qtbot.waitUntil(lambda: all(overlay_rgb(win, x, 50) != (0, 0, 0) for x in (15, 45, 75, 105)))
    drawn = [overlay_rgb(win, x, 50) for x in (15, 45, 75, 105)]
    assert len(set(drawn)) == 4                                 # told apart
    qtbot.waitUntil(lambda: win.segments_panel.list.count() == 4)
    for col in drawn:                                           # none drawn in a category's swatch colour
        assert min(color_distance(col, s) for s in swatches) >= MIN_DISTANCE, (col, swatches)
    # stable: a redraw (K twice) and a reopen give the same colours
    qtbot.keyClick(win, Qt.Key_K)
    qtbot.keyClick(win, Qt.Key_K)
    assert [overlay_rgb(win, x, 50) for x in (15, 45, 75, 105)] == drawn


def test_dropping_an_overview_proposal_keeps_the_others_colours(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project, FakeSegmenter(steps=4))   # 4 vertical strips of 32 px
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment()
    qtbot.keyClick(win, Qt.Key_V)
    assert win.overview

    def colours():
        img = np.asarray(win.canvas.proposal_item.image)
        return [tuple(int(v) for v in img[50, x, :3]) for x in (16, 48, 80, 112)]

    before = colours()
    assert len(set(before)) == 4
    click(qtbot, win, 48, 50)                                   # drop the second strip
    after = colours()
    assert after[1] == (0, 0, 0)
    assert [after[k] for k in (0, 2, 3)] == [before[k] for k in (0, 2, 3)]


def test_a_folder_with_unreadable_files_gives_one_dialog_and_one_banner_entry(qtbot, tmp_path):
    """Seen in the window: a folder with 3 unreadable files opened 3 modal dialogs on top of a banner that already
    listed them."""
    from PyQt5.QtWidgets import QMessageBox

    from annotator._qt.main_window import MainWindow
    from test_gui import make_image

    folder = tmp_path / "photos"
    folder.mkdir()
    make_image(folder / "good.png")
    broken = ["a.jpg", "b.png", "c.jpg"]
    for name in broken:
        (folder / name).write_bytes(b"not an image")
    win = MainWindow(None, segmenter=FakeSegmenter(), confirm_dialogs=True)  # dialogs as a person gets them
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    assert win.open_path(str(folder))
    boxes = [b for b in win.findChildren(QMessageBox) if b.isVisible()]
    assert len(boxes) == 1, [b.text() for b in boxes]
    assert all(name in boxes[0].text() for name in broken)
    assert win.banner.isVisible() and len(win.banner.text().splitlines()) == 1
    assert all(name in win.banner.text() for name in broken)
    for box in boxes:
        box.close()


def test_an_open_error_names_the_file_once_and_the_banner_does_not_pile_up(qtbot, tmp_path, project):  # noqa: F811
    """Seen in the window: "Cannot open X: X: not a readable image", and the red banner grew with every failed
    open until clicked."""
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"not an image")
    win = make_window(qtbot, project)
    for _ in range(3):
        assert not win.open_path(str(bad))
    message = win.messages[-1]
    assert message.count(str(bad)) == 1 and "not a readable image" in message, message
    assert win.banner.text().count(str(bad)) == 1                # the same failure three times: one entry
    assert win.open_path(str(project.project_dir))                # a later successful open clears it
    assert not win.banner.isVisible()
    assert win.project is project and not project.read_only      # its own project, reopened, stays editable


def test_export_folder_pickers_take_a_folder_that_does_not_exist_yet(qtbot, tmp_path, project):  # noqa: F811
    """Seen in the window: the export folder pickers answered "Directory not found" to a new folder's name, so a
    person had to make the folder elsewhere first. The real dialog is answered as a person would: a new name."""
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QLineEdit, QMessageBox

    win = make_window(qtbot, project)
    target = tmp_path / "exports" / "masks"
    refused: list = []

    def close_refusal() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            refused.append(box.text())
            box.done(0)
        elif isinstance(box, QFileDialog):
            QTimer.singleShot(100, close_refusal)  # the refusal may not be up yet

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(100, answer)  # not shown yet
            return
        dialog.findChild(QLineEdit, "fileNameEdit").setText(str(target))
        QTimer.singleShot(300, close_refusal)
        buttons = dialog.findChild(QDialogButtonBox)
        buttons.buttons()[0].click()  # the dialog's accept button ("Choose")
        if dialog.isVisible():
            dialog.reject()

    QTimer.singleShot(300, answer)
    path = win.export_masks()
    assert not refused, refused
    assert path and (target / "labelmap.txt").is_file()


def test_an_export_message_is_shown_in_the_default_window(qtbot, tmp_path):
    """Seen in the default 1280x800 window: the status line after an export ended "... not reviewed yet, so not
    ex", cut at the permanent widgets. The status bar now has two lines for a message and a height that does not
    change with the message (the image above must not move under the mouse); a message still too long has its
    path cut in the middle, every other word shown, the whole message in the tooltip."""
    from PyQt5.QtWidgets import QLabel

    from annotator.document import Project
    from test_gui import make_image

    root = tmp_path / "survey"
    (root / "images").mkdir(parents=True)
    make_image(root / "images" / "a.png")
    project = Project.new(root / "images", root / "project")
    win = make_window(qtbot, project, FakeSegmenter(steps=4))
    win.resize(1280, 800)
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment()
    win.status("Saved.")
    qtbot.wait(50)
    bar_height, canvas_height = win.statusBar().height(), win.canvas.height()
    for export in (lambda: win.export_masks(str(root / "masks")),
                   lambda: win.export_panoptic(str(root / "exports" / "coco_panoptic"), instances=False)):
        assert export()
        message = win.statusBar().currentMessage()
        assert message.endswith("not reviewed yet, so not exported)"), message
        qtbot.wait(50)  # the layout settles
        label = win.statusBar().findChild(QLabel, "statusMessage")
        assert label is not None and label.isVisible()
        assert label.fontMetrics().horizontalAdvance(message) > label.width()  # too long for one line here
        assert label.height() >= label.heightForWidth(label.width()), (label.width(), label.height())
        path = max(message.split(" "), key=len)
        assert all(word in label.text() for word in message.split(" ") if word != path), label.text()
        assert label.text() == message or (label.toolTip() == message and "…" in label.text())
        assert (win.statusBar().height(), win.canvas.height()) == (bar_height, canvas_height)
