"""What users of labelme / X-AnyLabeling / SAM-based tools expect: segments told apart and listed,
all auto-segment proposals reviewed at a glance, box to mask, brush size on the keyboard, the project reopening
where it was left."""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import Qt

from annotator._qt.canvas import segment_color
from annotator.document import Project
from test_gui import (FakeSegmenter, click, make_window, overlay_pixel, project,  # noqa: F401
                      wait_proposal)


def _accept_at(qtbot, win, x, y):
    click(qtbot, win, x, y)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)


def test_each_segment_has_its_own_colour_and_a_row_in_the_list(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project)
    _accept_at(qtbot, win, 30, 50)
    _accept_at(qtbot, win, 90, 50)
    entry = project.images[0]
    a, b = int(entry.labels[50, 30]), int(entry.labels[50, 90])
    qtbot.waitUntil(lambda: win.segments_panel.list.count() == 2)
    assert segment_color(a) != segment_color(b)
    assert tuple(overlay_pixel(win, 30, 50)[:3]) == segment_color(a)
    assert tuple(overlay_pixel(win, 90, 50)[:3]) == segment_color(b)
    row = win.segments_panel.list.item(win.segments_panel.row_of(b))
    assert f"#{b}" in row.text() and f"{int((entry.labels == b).sum())} px" in row.text()
    # selecting a row selects the segment; its tick box hides it; Delete removes it
    row.setSelected(True)
    assert win.selected == [b]
    row.setCheckState(Qt.Unchecked)
    qtbot.waitUntil(lambda: overlay_pixel(win, 90, 50)[3] == 0 or
                    tuple(overlay_pixel(win, 90, 50)[:3]) != segment_color(b))
    assert b in win.hidden and b in entry.segments          # hidden, not deleted
    qtbot.mouseClick(win.segments_panel.delete_btn, Qt.LeftButton)
    assert b not in entry.segments and a in entry.segments
    qtbot.waitUntil(lambda: win.segments_panel.list.count() == 1)


def test_overview_shows_all_proposals_drop_wrong_ones_accept_the_rest(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project, FakeSegmenter(steps=4))   # 4 vertical strips of 32 px
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment_all()
    assert "[4 to review]" in win.images_panel.list.item(0).text()
    qtbot.keyClick(win, Qt.Key_V)
    assert win.overview and win.proposal is None and len(win.bulk[0]) == 4
    click(qtbot, win, 40, 10)                                   # the second strip is wrong: drop it
    assert len(win.bulk[0]) == 3 and win.overview
    assert "[3 to review]" in win.images_panel.list.item(0).text()
    assert len(project.proposals(0)) == 3                       # dropped on disk too
    qtbot.keyClick(win, Qt.Key_Return)                          # accept all the rest
    entry = project.images[0]
    assert len(entry.segments) == 3 and entry.labels[10, 40] == 0 and entry.labels[10, 10] != 0
    assert not win.overview and 0 not in win.bulk and project.proposals(0) == []
    assert "to review" not in win.images_panel.list.item(0).text()
    assert "[4 to review]" in win.images_panel.list.item(1).text()


def test_box_gives_the_segment_inside_it(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project)
    qtbot.keyClick(win, Qt.Key_O)                               # box tool
    win.canvas.view.roi_drawn.emit(50, 20, 90, 70)              # as a drag on the canvas emits it
    mask = wait_proposal(qtbot, win)
    x, y, positive = win.clicks[0]                              # the box's interior-most point
    assert positive and 68 <= x <= 71 and 38 <= y <= 52
    assert mask.any() and not mask[:, :50].any() and not mask[:, 90:].any()   # inside the box (ROI)
    qtbot.keyClick(win, Qt.Key_Return)
    assert len(project.images[0].segments) == 1


def test_brush_size_keys_and_circle_cursor(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project)
    qtbot.keyClick(win, Qt.Key_B)
    r0 = win.brush_radius
    qtbot.keyClick(win, Qt.Key_Period)
    assert win.brush_radius > r0 and win.tools_panel.brush.value() == win.brush_radius
    qtbot.keyClick(win, Qt.Key_Comma)
    qtbot.keyClick(win, Qt.Key_Comma)
    assert win.brush_radius < r0
    win.canvas.view.hovered.emit(40.0, 30.0)
    cur = win.canvas.brush_cursor
    assert cur.isVisible() and abs(cur.rect().width() - (2 * win.brush_radius + 1)) < 1e-6
    qtbot.keyClick(win, Qt.Key_C)                               # the click tool has no brush cursor
    assert not cur.isVisible()


def test_project_reopens_on_the_image_it_was_left_on(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project)
    qtbot.keyClick(win, Qt.Key_D)
    assert win.index == 1
    win.close()
    win2 = make_window(qtbot, Project.open(project.project_dir))
    assert win2.index == 1


def test_images_list_shows_the_review_count_of_a_long_name_without_a_sideways_scroll_bar(qtbot):
    """Seen in the window under Xvfb: "[26 to review]" after a camera-length file name widened the row past the
    panel, so the count was cut off and the list grew a horizontal scroll bar."""
    from PyQt5.QtGui import QFontMetrics

    from annotator._qt.panels import ImageListPanel

    panel = ImageListPanel()
    qtbot.addWidget(panel)
    names = ["bicycle00_000000507037.jpg", "2026-11-03 14.22.31 holiday photo DSC_1234.jpg"]
    # As wide as a COCO-length name needs (fonts differ between platforms), so the long one does not fit.
    panel.resize(QFontMetrics(panel.list.font()).horizontalAdvance("  3.4%  " + names[0]) + 60, 200)
    panel.set_images(names, [0.034, 0.0], 0)
    panel.set_proposal_counts(names, [0.034, 0.0], {1: 26})
    panel.show()
    qtbot.waitExposed(panel)
    item = panel.list.item(1)
    rect = panel.list.visualItemRect(item)
    assert not panel.list.horizontalScrollBar().isVisible()
    assert rect.right() <= panel.list.viewport().width()
    shown = panel.shown_text(1)
    assert shown.startswith("  0.0%  [26 to review]") and "…" in shown and shown.endswith(".jpg"), shown
    assert QFontMetrics(panel.list.font()).horizontalAdvance(shown) <= rect.width()
    assert panel.shown_text(0) == "  3.4%  " + names[0]  # a name that fits is not elided
    assert names[1] in item.toolTip() and "26" in item.toolTip()


def test_proposals_without_a_net_score_show_none(qtbot, project):  # noqa: F811
    """Seen in the window under Xvfb: every auto-segment proposal and every brush-painted one said "score 1.00", a
    number nobody measured (full-image segmentation keeps no per-segment score). A click's proposal shows the net's
    own score."""
    win = make_window(qtbot, project)
    click(qtbot, win, 30, 50)
    wait_proposal(qtbot, win)
    assert "score 0.80" in win.tools_panel.info.text()  # FakeSegmenter's score
    qtbot.keyClick(win, Qt.Key_Escape)
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment()
    assert win.proposal is not None and win.proposal_from_bulk
    assert "score" not in win.tools_panel.info.text(), win.tools_panel.info.text()
    qtbot.keyClick(win, Qt.Key_Escape)
    assert win.proposal is not None and "score" not in win.tools_panel.info.text()
    qtbot.keyClick(win, Qt.Key_Return, Qt.ShiftModifier)  # accept the rest: the image is labelled
    win.project.delete_segment(0, int(win.entry.labels[50, 100]))
    qtbot.keyClick(win, Qt.Key_B)
    click(qtbot, win, 100, 50)  # a brush dab with nothing selected starts a hand-painted proposal
    assert win.proposal is not None and not win.proposal_from_bulk
    assert "score" not in win.tools_panel.info.text(), win.tools_panel.info.text()


def test_an_export_says_how_many_proposals_were_left_unreviewed(qtbot, project, tmp_path):  # noqa: F811
    """Only accepted segments are exported. Seen in the window under Xvfb: an export with 25 auto-segment proposals
    still queued said only "Exported ...", so a person could believe them exported."""
    import json

    win = make_window(qtbot, project)
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment()
    qtbot.keyClick(win, Qt.Key_Return)  # accept the first of 4; 3 left to review
    path = win.export_panoptic(str(tmp_path / "pan"), instances=False)
    data = json.loads(open(path).read())
    assert sum(len(a["segments_info"]) for a in data["annotations"]) == 1
    message = win.statusBar().currentMessage()
    assert "Exported COCO panoptic" in message and "3 auto-segment proposals" in message, message
    assert win.export_yolo(str(tmp_path / "yolo")) and "3 auto-segment proposals" in win.statusBar().currentMessage()
    assert win.export_masks(str(tmp_path / "masks")) and "3 auto-segment proposals" in win.statusBar().currentMessage()
    assert (tmp_path / "masks" / "SegmentationClass" / "a.png").is_file()
    qtbot.keyClick(win, Qt.Key_Return, Qt.ShiftModifier)  # accept the rest: nothing left unreviewed
    assert win.export_labelme(str(tmp_path / "lm"))
    assert "proposal" not in win.statusBar().currentMessage(), win.statusBar().currentMessage()


def test_delete_a_category_from_the_panel_moves_its_segments_and_undoes(qtbot, project, monkeypatch):  # noqa: F811
    """A category added by mistake could be renamed but never removed, so it stayed in every export."""
    from PyQt5.QtWidgets import QInputDialog

    win = make_window(qtbot, project)
    dog = win.add_category(name="dog")
    typo = win.add_category(name="dgo")  # now the current category
    _accept_at(qtbot, win, 30, 50)
    sid = int(win.entry.labels[50, 30])
    assert win.entry.segments[sid].category_id == typo
    asked = []

    def choose(parent, title, label, items, current, editable):
        asked.append((label, list(items)))
        return "dog", True

    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(choose))
    row = [win.categories_panel.list.item(r).data(Qt.UserRole) for r in range(win.categories_panel.list.count())]
    win.categories_panel.list.setCurrentRow(row.index(typo))
    qtbot.mouseClick(win.categories_panel.delete_btn, Qt.LeftButton)
    assert asked and "used by 1 segment" in asked[0][0] and "dgo" not in asked[0][1] and "dog" in asked[0][1]
    assert typo not in {c.id for c in project.categories}
    assert project.images[0].segments[sid].category_id == dog
    qtbot.waitUntil(lambda: all("dgo" not in win.categories_panel.list.item(r).text()
                                for r in range(win.categories_panel.list.count())))
    assert "Deleted category 'dgo'" in win.statusBar().currentMessage()
    assert win.category_id != typo  # the current category moved off the deleted one
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert typo in {c.id for c in project.categories} and project.images[0].segments[sid].category_id == typo
    qtbot.waitUntil(lambda: any("dgo" in win.categories_panel.list.item(r).text()
                                for r in range(win.categories_panel.list.count())))
    # the last category cannot go; an unused one goes without a question
    asked.clear()
    assert win.delete_category(dog) and not asked
    first = project.categories[0].id
    assert win.delete_category(typo, move_to=first) and project.images[0].segments[sid].category_id == first
    assert [c.id for c in project.categories] == [first]
    assert not win.delete_category(first) and "last category" in win.messages[-1]


def test_category_right_click_menu_turns_a_thing_into_stuff(qtbot, project):  # noqa: F811
    """Thing or stuff was asked once, when the category was added, and could not be changed after; it decides
    the COCO exports' isthing (and which segments the instances export holds)."""
    win = make_window(qtbot, project)
    road = win.add_category(name="road")  # added as a thing by mistake
    menu = win.categories_panel.menu_for(road, isthing=True)
    actions = {a.text(): a for a in menu.actions()}
    assert {"Rename…", "Colour…", "Delete…"} <= set(actions)
    actions["Countable thing (unticked: stuff)"].trigger()
    assert project.category(road).isthing is False
    qtbot.waitUntil(lambda: any(win.categories_panel.list.item(r).text().endswith("road  (stuff)")
                                for r in range(win.categories_panel.list.count())))
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert project.category(road).isthing is True


class PreviewingSegmenter:
    """A first click previews a small disk at once, then answers a larger one after `delay` s (the refinements)."""

    device = "fake-cpu"

    def __init__(self, delay: float = 1.5) -> None:  # long enough that a busy CI machine still sees the preview
        self.delay = delay

    def predict(self, image, clicks, roi=None, preview=None):
        import time
        from types import SimpleNamespace

        h, w = image.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        x, y, _ = clicks[0]
        disk = lambda r: (xx - x) ** 2 + (yy - y) ** 2 <= r * r  # noqa: E731
        if preview is not None and len(clicks) == 1:
            preview(disk(5), 0.4)
        time.sleep(self.delay)
        return SimpleNamespace(mask=disk(15), score=0.9)

    def segment_image(self, image, roi=None, progress=None):
        return np.zeros(image.shape[:2], np.int32)


def test_the_first_click_shows_its_first_pass_at_once_and_enter_takes_the_refined_mask(qtbot, project):  # noqa: F811
    """Seen in the window under Xvfb: the first click of an object took 1.0-1.2 s to show anything (every view and
    refinement of the first click ran before the answer). Its first pass is now shown as soon as it exists."""
    win = make_window(qtbot, project, PreviewingSegmenter())
    click(qtbot, win, 60, 50)
    qtbot.waitUntil(lambda: win.proposal is not None, timeout=3000)
    assert win.pending is not None  # still refining
    assert win.proposal.sum() < 100 and "Refining" in win.tools_panel.info.text()
    qtbot.keyClick(win, Qt.Key_Return)  # accept now: it waits for the refined answer
    qtbot.waitUntil(lambda: len(project.images[0].segments) == 1, timeout=5000)
    sid = next(iter(project.images[0].segments))
    assert int((project.images[0].labels == sid).sum()) > 500  # the refined disk, not the preview
    # A second click before the refinement finishes supersedes the first click's answer and its preview.
    click(qtbot, win, 20, 20)
    qtbot.waitUntil(lambda: win.proposal is not None, timeout=3000)
    qtbot.keyClick(win, Qt.Key_Escape)
    qtbot.wait(1800)  # the rejected click's refined answer arrives and is ignored
    assert win.proposal is None and win.pending is None


def test_imports_are_in_the_file_menu_beside_open(qtbot, project):  # noqa: F811
    """They make and open a new project; under Export (where these actions used to be) nobody looked."""
    win = make_window(qtbot, project)
    menus = {a.text().replace("&", ""): [x.text().split("\t")[0] for x in a.menu().actions() if x.text()]
             for a in win.menuBar().actions() if a.menu() is not None}
    assert "Import COCO panoptic…" in menus["File"] and "Import labelme folder…" in menus["File"]
    assert menus["File"].index("Import COCO panoptic…") < menus["File"].index("Save")
    assert not any(t.startswith("Import") for t in menus["Export"])


def test_the_category_buttons_do_not_widen_the_side_panel(qtbot, project):  # noqa: F811
    """Seen in the window under Xvfb: a fourth button (Delete) in the categories row made that row the widest thing
    in the side panel, so the panel grew about 50 px and the image shrank."""
    from annotator._qt.panels import CategoryPanel

    panel = CategoryPanel()
    qtbot.addWidget(panel)
    panel.resize(260, 160)  # a narrow side column: its row of four buttons must fit, not push it wider
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.width() == 260
    assert panel.delete_btn.isVisible() and panel.delete_btn.geometry().right() < panel.width()


def test_g_fills_the_sliver_between_two_segments_and_ctrl_z_brings_it_back(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project)
    entry = project.images[0]
    left = np.zeros((96, 128), bool)
    left[:, :40] = True
    right = np.zeros((96, 128), bool)
    right[:, 43:80] = True                  # 3 px apart; columns 80-127 stay a wide unlabelled area
    a = project.add_segment(0, left, 1)
    b = project.add_segment(0, right, 1)
    qtbot.keyClick(win, Qt.Key_G)
    assert entry.labels[50, 40] == a and entry.labels[50, 42] == b and (entry.labels[:, 85:] == 0).all()
    assert "Filled" in win.statusBar().currentMessage()
    qtbot.waitUntil(lambda: tuple(overlay_pixel(win, 41, 50)[:3]) in (segment_color(a), segment_color(b)))
    qtbot.keyClick(win, Qt.Key_Z, Qt.ControlModifier)
    assert (entry.labels[:, 40:43] == 0).all()
    qtbot.keyClick(win, Qt.Key_G)
    qtbot.keyClick(win, Qt.Key_G)                          # nothing left to fill: says so, records nothing
    assert "No unlabelled gap" in win.statusBar().currentMessage()


def test_accepting_all_proposals_points_to_the_gap_filler(qtbot, project):  # noqa: F811
    win = make_window(qtbot, project, FakeSegmenter(steps=4))
    with qtbot.waitSignal(win.bulk_finished, timeout=10000):
        win.auto_segment_all()
    assert win.accept_all() == 4
    assert "G fills" in win.statusBar().currentMessage()
