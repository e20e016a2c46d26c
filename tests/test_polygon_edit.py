"""Polygon editing of a segment's outline (annotator.polygon_edit) and its write-back as one undo step
(Project.set_segment_mask): lossless when unedited, local when edited, other segments untouched."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotator.document import Project
from annotator.polygon_edit import PolygonEdit
from test_gui import make_image


def _ring_mask(h=160, w=240) -> np.ndarray:
    """Two parts: a ring (a disk with a hole) and a rectangle; plus a lone pixel and a one-pixel line."""
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (70, 80), 55, 1, -1)
    cv2.circle(m, (70, 80), 18, 0, -1)
    cv2.rectangle(m, (150, 20), (220, 130), 1, -1)
    m[3, 3] = 1
    m[150, 140:160] = 1
    return m.astype(bool)


def _swept(h, w, *triangles) -> np.ndarray:
    """The pixels of these triangles grown by one pixel: where a rasterised edge through them may fall."""
    out = np.zeros((h, w), np.uint8)
    for tri in triangles:
        pts = np.round(np.asarray(tri, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(out, [pts], 1, cv2.LINE_8, 4)
        cv2.polylines(out, [pts], True, 1, 1, cv2.LINE_8, 4)
    return cv2.dilate(out, np.ones((3, 3), np.uint8)).astype(bool)


def _outer_ring(edit: PolygonEdit, part_of_x: float) -> int:
    return next(k for k, r in enumerate(edit.rings) if not r.hole and abs(r.points[:, 0].mean() - part_of_x) < 30)


def test_unedited_rings_give_the_mask_back_exactly_holes_and_parts_kept():
    mask = _ring_mask()
    edit = PolygonEdit(mask)
    assert sum(r.hole for r in edit.rings) == 1 and sum(not r.hole for r in edit.rings) == 2
    # simplified for editing: far fewer handles than the traced staircase
    traced = sum(len(c) for c in cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                                  cv2.CHAIN_APPROX_NONE)[0])
    assert edit.vertex_count < traced / 5
    assert np.array_equal(edit.to_mask(), mask)
    # a vertex moved and moved back, an inserted vertex left on its edge: still exactly the mask
    r = _outer_ring(edit, 70)
    x, y = edit.rings[r].points[2]
    edit.move_vertex(r, 2, x + 9, y - 4)
    edit.move_vertex(r, 2, x, y)
    k = edit.insert_vertex_on_edge(r, 5, *edit.rings[r].points[5:7].mean(0))
    assert len(edit.rings[r].points) == len(edit._original[r]) + 1 and k == 6
    assert not edit.changed
    assert np.array_equal(edit.to_mask(), mask)


@pytest.mark.parametrize("which", ["outer", "hole", "rectangle"])
def test_moving_a_vertex_changes_only_the_pixels_between_the_old_and_new_outline(which):
    mask = _ring_mask()
    h, w = mask.shape
    edit = PolygonEdit(mask)
    r = {"outer": _outer_ring(edit, 70), "rectangle": _outer_ring(edit, 185),
         "hole": next(k for k, g in enumerate(edit.rings) if g.hole)}[which]
    pts = edit.rings[r].points
    i = 1
    a, p, b = pts[i - 1].copy(), pts[i].copy(), pts[(i + 1) % len(pts)].copy()
    centre = pts.mean(0)
    q = p + (p - centre) / np.hypot(*(p - centre)) * (12 if which != "hole" else 7)  # outward
    edit.move_vertex(r, i, *q)
    out = edit.to_mask()
    changed = out != mask
    assert changed.sum() > 20  # the drag did something
    allowed = _swept(h, w, (a, p, b), (a, q, b))
    assert not (changed & ~allowed).any(), np.argwhere(changed & ~allowed)[:5]
    # the other part, the lone pixel and the one-pixel line are untouched
    assert out[3, 3] and out[150, 140:160].all()
    far = ~cv2.dilate(allowed.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.array_equal(out[far], mask[far])
    assert edit.undo() and np.array_equal(edit.to_mask(), mask)


def test_a_drag_outward_fills_the_triangle_it_sweeps():
    mask = np.zeros((100, 100), bool)
    mask[20:80, 20:80] = True
    edit = PolygonEdit(mask)
    assert len(edit.rings) == 1 and len(edit.rings[0].points) == 4
    pts = edit.rings[0].points
    top = [k for k in range(4) if pts[k, 1] == 20]
    k = edit.insert_vertex_on_edge(0, min(top) if abs(top[0] - top[1]) == 1 else 3, 50, 20)
    edit.move_vertex(0, k, 50, 5)
    out = edit.to_mask()
    assert out[6, 50] and out[12, 50] and not out[12, 25] and not out[4, 50]
    assert np.array_equal(out[20:], mask[20:])  # nothing below the old top edge changed
    added = int((out & ~mask).sum())
    assert abs(added - 0.5 * 60 * 15) < 60  # the triangle's area, give or take its rasterised edges


def test_deleting_a_vertex_cuts_off_its_triangle_and_three_vertices_stay():
    mask = np.zeros((100, 100), bool)
    mask[20:80, 20:80] = True
    edit = PolygonEdit(mask)
    edit.delete_vertex(0, 0)
    out = edit.to_mask()
    removed = mask & ~out
    assert 0.5 * 60 * 60 - 80 < removed.sum() < 0.5 * 60 * 60 + 80 and not (out & ~mask).any()
    with pytest.raises(ValueError, match="at least 3"):
        edit.delete_vertex(0, 0)
    assert edit.undo() and np.array_equal(edit.to_mask(), mask)
    assert not edit.undo()


def test_nearest_vertex_and_edge():
    mask = np.zeros((100, 100), bool)
    mask[20:80, 20:80] = True
    edit = PolygonEdit(mask)
    assert edit.nearest_vertex(21, 22, 4) is not None
    assert edit.nearest_vertex(50, 50, 4) is None
    ring, k, px, py = edit.nearest_edge(50, 21.5, 3)
    assert (px, py) == (50, 20)
    assert edit.nearest_edge(50, 50, 3) is None


def test_set_segment_mask_is_one_undo_step_and_never_touches_other_segments(tmp_path):
    (tmp_path / "img").mkdir()
    make_image(tmp_path / "img" / "a.png", h=160, w=240)
    project = Project.new(tmp_path / "img", tmp_path / "proj")
    cid = project.categories[0].id
    mask = _ring_mask()
    sid = project.add_segment(0, mask, cid)
    neighbour = np.zeros_like(mask)
    neighbour[60:100, 120:150] = True  # right of the disk, left of the rectangle
    other = project.add_segment(0, neighbour, cid)
    labels_before = np.array(project.images[0].labels)
    neighbour = labels_before == other  # its unlabelled pixels only
    steps = len(project._undo)

    edit = PolygonEdit(project.images[0].segment_mask(sid))
    r = _outer_ring(edit, 70)
    pts = edit.rings[r].points
    i = int(np.argmax(pts[:, 0]))  # the disk's rightmost vertex, dragged into the neighbour
    edit.move_vertex(r, i, pts[i, 0] + 25, pts[i, 1])
    i = int(np.argmin(pts[:, 0]))  # and its leftmost one inward
    edit.move_vertex(r, i, pts[i, 0] + 10, pts[i, 1])
    new = edit.to_mask()
    assert (new & neighbour).any()
    blocked = project.set_segment_mask(0, sid, new)
    assert blocked == int((new & neighbour).sum())
    after = np.array(project.images[0].labels)
    assert len(project._undo) == steps + 1
    assert np.array_equal(after == other, neighbour)                  # the other segment kept every pixel
    assert np.array_equal(after == sid, new & ~neighbour)
    assert np.array_equal(after[(labels_before != sid) & (after != sid)],
                          labels_before[(labels_before != sid) & (after != sid)])
    # saved and reopened as edited, then one undo restores the map exactly
    project.close()
    project = Project.open(tmp_path / "proj")
    assert np.array_equal(project.images[0].labels, after)
    project.close()
    project = Project.open(tmp_path / "proj")
    project.set_segment_mask(0, sid, new & ~neighbour)  # no pixel changes: no step
    assert not project.can_undo
    project.set_segment_mask(0, sid, mask)
    assert project.undo()
    assert np.array_equal(project.images[0].labels, after)
    project.close()


def test_set_segment_mask_undo_restores_exactly_and_an_empty_mask_removes_the_segment(tmp_path):
    (tmp_path / "img").mkdir()
    make_image(tmp_path / "img" / "a.png", h=160, w=240)
    project = Project.new(tmp_path / "img", tmp_path / "proj")
    sid = project.add_segment(0, _ring_mask(), project.categories[0].id)
    before = np.array(project.images[0].labels)
    project.set_segment_mask(0, sid, np.zeros_like(before, bool))
    assert sid not in project.images[0].segments and not project.images[0].labels.any()
    assert project.undo()
    assert sid in project.images[0].segments and np.array_equal(project.images[0].labels, before)
    project.close()
