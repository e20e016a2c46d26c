"""Document model: edits, undo/redo, the one-segment-per-pixel rule, atomic autosave, reopen, malformed files."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator import document
from annotator.document import Category, Project, ProjectError

H, W = 40, 60


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def images_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(d / f"im{i}.png"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    return d


@pytest.fixture
def proj(images_dir, tmp_path):
    return Project.new(images_dir, tmp_path / "proj")


def _state(p: Project):
    """Everything a user relies on, for comparing a project before / after undo or reopen."""
    return ([(e.path, e.width, e.height, dict(e.segments), e.labels.copy()) for e in p.images],
            [(c.id, c.name, c.color, c.isthing) for c in p.categories])


def _same(a, b):
    (ia, ca), (ib, cb) = a, b
    assert ca == cb
    assert len(ia) == len(ib)
    for x, y in zip(ia, ib):
        assert x[:4] == y[:4]
        np.testing.assert_array_equal(x[4], y[4])


def test_new_skips_unreadable_image(images_dir, tmp_path):
    (images_dir / "broken.jpg").write_bytes(b"not a jpeg")
    p = Project.new(images_dir, tmp_path / "p")
    assert [e.name for e in p.images] == ["im0.png", "im1.png", "im2.png"]
    assert len(p.skipped) == 1 and "broken.jpg" in p.skipped[0]
    assert (p.images[0].width, p.images[0].height) == (W, H)


def test_a_header_size_the_decoder_disagrees_with_heals_until_something_is_labelled(images_dir, tmp_path,
                                                                                   monkeypatch):
    # Project.new takes sizes from the headers; should the decoder ever disagree (an orientation tag read
    # differently), an image with no labels yet takes the decoded size instead of becoming unusable.
    monkeypatch.setattr(document, "_displayed_size", lambda path: (H, W))   # sides swapped
    p = Project.new(images_dir, tmp_path / "p")
    assert (p.images[0].width, p.images[0].height) == (H, W)
    assert p.images[0].read_image().shape[:2] == (H, W)
    assert (p.images[0].width, p.images[0].height) == (W, H) and p.images[0].labels.shape == (H, W)
    p.add_segment(0, _box(2, 8, 2, 8), 1)
    p.save()
    # Once labelled, a changed image file is an error that names both sizes, never a silent re-size.
    entry = p.images[0]
    entry.width, entry.height = H, W
    with pytest.raises(ProjectError, match="expects"):
        entry.read_image()


def test_new_refuses_to_overwrite_existing_project(proj, images_dir):
    before = proj.json_path.read_bytes()
    with pytest.raises(ProjectError, match="already exists"):
        Project.new(images_dir, proj.project_dir)
    assert proj.json_path.read_bytes() == before


def test_add_segment_takes_only_unlabelled_pixels(proj):
    a = proj.add_segment(0, _box(0, 20, 0, 30), 1)
    b = proj.add_segment(0, _box(10, 30, 20, 50), 1)
    lab = proj.images[0].labels
    assert a != b and a > 0 and b > 0
    assert (lab[0:20, 0:30] == a).all()  # b did not steal a's pixels
    assert (lab == b).sum() == 20 * 30 - 10 * 10
    # a mask entirely inside labelled pixels records nothing
    n_undo = len(proj._undo)
    assert proj.add_segment(0, _box(0, 5, 0, 5), 1) == 0
    assert len(proj._undo) == n_undo
    assert proj.images[0].labelled_fraction() == pytest.approx((20 * 30 + 20 * 30 - 100) / (H * W))
    np.testing.assert_array_equal(proj.images[0].unlabelled_mask(), lab == 0)


def test_labels_view_is_read_only(proj):
    proj.add_segment(0, _box(0, 5, 0, 5), 1)
    with pytest.raises(ValueError):
        proj.images[0].labels[0, 0] = 7


def _check_undo_redo(p: Project, edit):
    before = _state(p)
    edit()
    after = _state(p)
    with pytest.raises(AssertionError):
        _same(before, after)  # the edit changed something
    assert p.undo()
    _same(_state(p), before)
    _same(_state(Project.open(p.project_dir, read_only=True)), before)  # undo is saved too
    assert p.redo()
    _same(_state(p), after)
    _same(_state(Project.open(p.project_dir, read_only=True)), after)


def test_undo_redo_each_edit(proj):
    a = proj.add_segment(0, _box(0, 20, 0, 30), 1)
    b = proj.add_segment(0, _box(20, 40, 0, 30), 1)
    cat2 = proj.add_category("car", (10, 20, 30), isthing=True)
    _check_undo_redo(proj, lambda: proj.add_segment(0, _box(0, 40, 30, 45), 1))
    _check_undo_redo(proj, lambda: proj.paint(0, a, _box(0, 40, 25, 50)))
    _check_undo_redo(proj, lambda: proj.paint(0, a, _box(0, 10, 0, 10), erase=True))
    _check_undo_redo(proj, lambda: proj.paint(0, b, _box(15, 25, 0, 60), overwrite=True))
    _check_undo_redo(proj, lambda: proj.set_segment_category(0, a, cat2))
    _check_undo_redo(proj, lambda: proj.set_segment_crowd(0, a, True))
    _check_undo_redo(proj, lambda: proj.merge_segments(0, a, b))
    _check_undo_redo(proj, lambda: proj.delete_segment(0, a))
    _check_undo_redo(proj, lambda: proj.add_category("sky", isthing=False))
    _check_undo_redo(proj, lambda: proj.rename_category(cat2, "truck"))
    _check_undo_redo(proj, lambda: proj.recolor_category(cat2, (1, 2, 3)))
    _check_undo_redo(proj, lambda: proj.set_category_isthing(cat2, False))


def test_undo_whole_history_and_redo_cleared_by_new_edit(proj):
    empty = _state(proj)
    proj.add_segment(0, _box(0, 20, 0, 30), 1)
    s = proj.add_segment(1, _box(0, 20, 0, 30), 1)
    proj.paint(1, s, _box(0, 40, 0, 40))
    proj.add_category("x")
    while proj.can_undo:
        proj.undo()
    _same(_state(proj), empty)
    assert not proj.undo()
    proj.redo()
    assert proj.can_redo
    proj.add_segment(2, _box(0, 5, 0, 5), 1)
    assert not proj.can_redo and not proj.redo()


def test_paint_edits_and_each_pixel_in_one_segment(proj):
    a = proj.add_segment(0, _box(0, 20, 0, 30), 1)
    b = proj.add_segment(0, _box(20, 40, 0, 30), 1)
    proj.paint(0, a, _box(10, 30, 0, 60))  # only unlabelled pixels grow a
    lab = proj.images[0].labels
    assert (lab[20:40, 0:30] == b).all() and (lab[10:30, 30:60] == a).all()
    proj.paint(0, a, _box(30, 40, 0, 30), overwrite=True)  # takes from b
    assert (proj.images[0].labels[30:40, 0:30] == a).all()
    proj.paint(0, a, _box(0, 40, 0, 60), erase=True)
    assert a not in proj.images[0].segments  # emptied segment removed
    proj.paint(0, b, _box(0, 40, 0, 60), overwrite=True)
    assert set(np.unique(proj.images[0].labels)) == {b}
    assert proj.images[0].labelled_fraction() == 1.0


def test_fill_gaps_gives_thin_slivers_to_the_nearest_segment_and_leaves_wide_areas(proj, tmp_path):
    # Two segments 3 px apart (the sliver auto-segment leaves where segments meet), a 2 px strip along the
    # bottom edge under the left one, and a wide unlabelled area on the right that a person still has to click.
    a = proj.add_segment(0, _box(0, 38, 0, 20), 1)
    b = proj.add_segment(0, _box(0, 40, 23, 40), 1)
    before = proj.images[0].labels.copy()
    assert proj.fill_gaps(0, max_width=2) > 0
    lab = proj.images[0].labels
    assert (lab[:, 20:23] != 0).all()                      # the sliver is gone
    assert (lab[:, 20] == a).all() and (lab[:, 22] == b).all()  # each side from the segment next to it
    assert (lab[38:40, 0:20] == a).all()                   # the strip along the edge
    assert (lab[:, 44:60] == 0).all()                      # the wide area stays unlabelled
    assert ((before != 0) <= (lab == before)).all()        # no labelled pixel changes hands
    assert set(proj.images[0].segments) == {a, b}
    filled = lab.copy()
    assert proj.fill_gaps(0, max_width=2) == 0             # nothing left to fill: no empty undo step
    reopened_dir = proj.project_dir
    proj.undo()
    np.testing.assert_array_equal(proj.images[0].labels, before)  # one undo step
    proj.redo()
    proj.close()
    again = Project.open(reopened_dir)                   # saved at once, like every edit
    np.testing.assert_array_equal(again.images[0].labels, filled)
    again.close()


def test_fill_gaps_without_segments_changes_nothing(proj):
    assert proj.fill_gaps(0) == 0
    assert not proj.can_undo


def test_overwrite_paint_removes_segment_left_empty(proj):
    a = proj.add_segment(0, _box(0, 10, 0, 10), 1)
    b = proj.add_segment(0, _box(10, 20, 0, 10), 1)
    proj.paint(0, b, _box(0, 10, 0, 10), overwrite=True)
    assert a not in proj.images[0].segments
    proj.undo()
    assert a in proj.images[0].segments and (proj.images[0].labels[0:10, 0:10] == a).all()


def test_undo_stores_diffs_not_full_maps(proj):
    proj.add_segment(0, _box(2, 6, 3, 8), 1)
    step = proj._undo[-1]
    assert step.before.shape == (4, 5) and step.after.shape == (4, 5)


def test_listeners_told_after_changes(proj):
    events = []
    proj.add_listener(lambda ev, i: events.append((ev, i)))
    s = proj.add_segment(1, _box(0, 5, 0, 5), 1)
    proj.delete_segment(1, s)
    proj.add_category("c")
    proj.undo()
    assert events == [("add_segment", 1), ("delete_segment", 1), ("add_category", -1), ("undo", -1)]


def test_bad_arguments_raise_clear_errors(proj):
    with pytest.raises(IndexError):
        proj.add_segment(5, _box(0, 1, 0, 1), 1)
    with pytest.raises(KeyError):
        proj.add_segment(0, _box(0, 1, 0, 1), 99)
    with pytest.raises(ValueError):
        proj.add_segment(0, np.ones((3, 3), bool), 1)
    with pytest.raises(KeyError):
        proj.delete_segment(0, 42)


def test_reopen_restores_everything(proj):
    a = proj.add_segment(0, _box(0, 20, 0, 30), 1)
    sky = proj.add_category("sky", (0, 0, 255), isthing=False)
    b = proj.add_segment(0, _box(20, 40, 0, 60), sky)
    proj.add_segment(2, _box(5, 10, 5, 10), sky)
    proj.set_segment_crowd(0, a, True)
    q = Project.open(proj.project_dir, read_only=True)
    _same(_state(q), _state(proj))
    assert q.images[0].segments[a].iscrowd and q.images[0].segments[b].category_id == sky
    assert q.category(sky).isthing is False
    # labelled fraction of an image not yet loaded comes from the saved count
    q = Project.open(proj.project_dir, read_only=True)
    assert not q.images[2].is_loaded
    assert q.images[2].labelled_fraction() == pytest.approx(25 / (H * W))
    assert not q.images[2].is_loaded


def test_only_current_label_files_kept(proj):
    for k in range(4):
        proj.add_segment(0, _box(k, k + 1, 0, 5), 1)
    files = os.listdir(proj.project_dir / "labels")
    assert len(files) == 1 and json.loads(proj.json_path.read_text())["images"][0]["labels"].endswith(files[0])


def test_failed_save_keeps_previous_project_intact(proj, monkeypatch):
    """Simulated crash in the middle of the save: the last accepted state stays on disk, nothing is corrupted."""
    a = proj.add_segment(0, _box(0, 20, 0, 30), 1)
    saved = _state(proj)
    json_bytes = proj.json_path.read_bytes()
    labels_before = sorted(os.listdir(proj.project_dir / "labels"))

    def boom(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(document.os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        proj.add_segment(0, _box(20, 40, 0, 60), 1)
    with pytest.raises(OSError):
        proj.delete_segment(0, a)
    monkeypatch.undo()
    assert proj.json_path.read_bytes() == json_bytes
    assert sorted(os.listdir(proj.project_dir / "labels")) == labels_before  # no temp files left behind
    assert not [f for f in os.listdir(proj.project_dir) if f.endswith(".tmp")]
    _same(_state(Project.open(proj.project_dir, read_only=True)), saved)
    # the unsaved edits are still in memory and the next save writes them
    proj.save()
    _same(_state(Project.open(proj.project_dir, read_only=True)), _state(proj))


def test_crash_between_label_write_and_json_replace(proj, monkeypatch):
    """The new label map is written, then replacing project.json fails: the old json must still match its map."""
    proj.add_segment(0, _box(0, 20, 0, 30), 1)
    saved = _state(proj)
    real_replace = os.replace

    def replace_only_pngs(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("killed (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(document.os, "replace", replace_only_pngs)
    with pytest.raises(OSError):
        proj.add_segment(0, _box(20, 40, 0, 60), 1)
    monkeypatch.undo()
    _same(_state(Project.open(proj.project_dir, read_only=True)), saved)


def test_orphans_from_a_crash_are_cleaned_on_next_save(proj):
    proj.add_segment(0, _box(0, 20, 0, 30), 1)
    orphan = proj.project_dir / "labels" / "00000_im0_g999.png"
    orphan.write_bytes(b"x")
    tmp = proj.project_dir / ".project.json.abc.tmp"
    tmp.write_bytes(b"x")
    proj.close()  # one writer per folder, also within a process
    q = Project.open(proj.project_dir)
    assert orphan.exists()  # open never modifies files
    q.add_segment(1, _box(0, 5, 0, 5), 1)
    assert not orphan.exists() and not tmp.exists()


@pytest.mark.parametrize("content, match", [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (b'{"format": "other"}', "not an annotator project"),
    (None, "category_id"),
    (None, "used twice"),
    (None, "version"),
])
def test_malformed_project_raises_and_leaves_file_untouched(proj, content, match):
    a = proj.add_segment(0, _box(0, 20, 0, 30), 1)
    data = json.loads(proj.json_path.read_text())
    if content is None:
        if match == "category_id":
            data["images"][0]["segments"][0]["category_id"] = 77
        elif match == "used twice":
            data["images"][0]["segments"].append({"id": a, "category_id": 1})
        else:
            data["version"] = 99
        content = json.dumps(data).encode()
    proj.close()  # a second writer in this process would be refused before the file is read
    proj.json_path.write_bytes(content)
    with pytest.raises(ProjectError, match=match) as err:
        Project.open(proj.project_dir)
    assert "project.json" in str(err.value)
    assert proj.json_path.read_bytes() == content


def test_corrupt_label_map_is_reported_on_load(proj):
    proj.add_segment(0, _box(0, 20, 0, 30), 1)
    q = Project.open(proj.project_dir, read_only=True)
    label_file = proj.project_dir / q.images[0].label_file
    label_file.write_bytes(b"garbage")
    with pytest.raises(ProjectError, match=label_file.name):
        q.images[0].labels
    assert label_file.read_bytes() == b"garbage"


def test_missing_label_map_is_reported_on_open(proj):
    proj.add_segment(0, _box(0, 20, 0, 30), 1)
    proj.close()  # a second writer in this process would be refused before the file is read
    os.unlink(proj.project_dir / proj.images[0].label_file)
    with pytest.raises(ProjectError, match="label map .* is missing"):
        Project.open(proj.project_dir)


def test_label_maps_loaded_lazily_and_evicted(images_dir, tmp_path):
    paths = sorted(str(p) for p in images_dir.iterdir())
    p = Project.new(paths * 3, tmp_path / "big")  # 9 entries
    p.max_loaded_maps = 2
    for i in range(len(p.images)):
        p.add_segment(i, _box(0, 5, i, i + 5), 1)
    assert sum(e.is_loaded for e in p.images) <= 3
    q = Project.open(p.project_dir, read_only=True)
    assert not any(e.is_loaded for e in q.images)
    assert (q.images[4].labels[0:5, 4:9] > 0).all()
    # undo of an edit to an image whose map was dropped still works
    assert not p.images[0].is_loaded
    while p.can_undo:
        p.undo()
    assert all(e.labelled_fraction() == 0 for e in p.images)


def test_project_moved_with_its_images(images_dir, tmp_path):
    """Paths are stored relative to the project too, so a folder holding both can be moved."""
    root = tmp_path / "root"
    root.mkdir()
    imgs = root / "imgs"
    os.rename(images_dir, imgs)
    p = Project.new(imgs, root / "proj")
    p.add_segment(0, _box(0, 5, 0, 5), 1)
    moved = tmp_path / "moved"
    os.rename(root, moved)
    q = Project.open(moved / "proj", read_only=True)
    assert Path(q.images[0].path) == (moved / "imgs" / "im0.png").resolve()
    assert q.images[0].read_image().shape == (H, W, 3)
    assert not q.warnings


def test_missing_image_is_a_warning_not_an_error(proj):
    os.unlink(proj.images[1].path)
    q = Project.open(proj.project_dir, read_only=True)
    assert len(q.images) == 3 and any("im1.png" in w for w in q.warnings)
    with pytest.raises(ProjectError, match="im1.png"):
        q.images[1].read_image()


def test_new_with_given_categories(images_dir, tmp_path):
    cats = [Category(3, "road", (128, 64, 128), False), Category(7, "car", (0, 0, 142), True)]
    p = Project.new(images_dir, tmp_path / "c", categories=cats)
    assert [c.id for c in p.categories] == [3, 7]
    assert p.add_category("bus") == 8


def test_sigkill_during_edits_loses_nothing_accepted(proj):
    """A child process makes edits and reports each accepted one; SIGKILL it mid-way, then reopen."""
    import signal
    import subprocess
    import sys
    import time

    script = f"""
import sys, numpy as np
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from annotator.document import Project
p = Project.open({str(proj.project_dir)!r})
for k in range(10000):
    m = np.zeros(({H}, {W}), bool)
    m[k % {H}, (k // {H}) % {W}] = True
    assert p.add_segment(0, m, 1) > 0
    print(k, flush=True)
"""
    proj.close()  # one writer per project: the child takes the lock
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    deadline = time.time() + 20
    while acknowledged < 30 and time.time() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert acknowledged >= 30, "child made no progress"
    q = Project.open(proj.project_dir)
    lab = q.images[0].labels
    assert len(q.images[0].segments) >= acknowledged + 1  # every acknowledged edit is on disk
    assert set(np.unique(lab)) - {0} == set(q.images[0].segments)


def test_delete_category_moves_its_segments_on_every_image_in_one_undo_step(proj):
    """A category added by mistake ("dgo") or two that should be one: delete it, its segments move to another."""
    dog = proj.add_category("dog", (200, 0, 0))
    typo = proj.add_category("dgo", (0, 200, 0))
    sky = proj.add_category("sky", (0, 0, 200), isthing=False)
    a = proj.add_segment(0, _box(0, 20, 0, 30), typo)
    b = proj.add_segment(2, _box(0, 20, 0, 30), typo)
    c = proj.add_segment(2, _box(20, 40, 0, 30), dog)
    order = [cat.id for cat in proj.categories]
    with pytest.raises(ValueError, match=r"used by 2 segments on 2 images"):
        proj.delete_category(typo)  # in use, and no category to move them to: refused, nothing changed
    assert typo in {cat.id for cat in proj.categories}
    _check_undo_redo(proj, lambda: proj.delete_category(typo, move_to=dog))
    assert [cat.id for cat in proj.categories] == [i for i in order if i != typo]
    assert proj.images[0].segments[a].category_id == dog and proj.images[2].segments[b].category_id == dog
    assert proj.images[2].segments[c].category_id == dog
    assert proj.undo()
    assert [cat.id for cat in proj.categories] == order  # back in its place: keys 1-9 pick the same ones
    assert proj.images[0].segments[a].category_id == typo
    # an unused category goes without a target; the last one cannot go
    assert proj.delete_category(sky) == 0
    reopened = Project.open(proj.project_dir, read_only=True)
    assert sky not in {cat.id for cat in reopened.categories}
    for cid in [cat.id for cat in proj.categories][1:]:
        proj.delete_category(cid, move_to=proj.categories[0].id)
    with pytest.raises(ValueError, match="last category"):
        proj.delete_category(proj.categories[0].id)
    with pytest.raises(KeyError):
        proj.delete_category(999)


def test_a_second_open_for_editing_in_the_same_process_is_refused(proj):
    """Two Project.open calls on one folder in one process both succeeded, and when the second saved, the segment
    the first had added was gone (a second process was already refused). The second is refused too, or opens
    read-only when asked to fall back; the first keeps working, and once it is closed the folder is free."""
    from annotator.document import ProjectLockedError

    a = proj.add_segment(0, _box(0, 10, 0, 10), 1)
    with pytest.raises(ProjectLockedError, match="already open for editing in this process"):
        Project.open(proj.project_dir)
    with pytest.raises(ProjectLockedError):
        Project.open(proj.json_path)  # named by its project.json: the same folder
    viewer = Project.open(proj.project_dir, fallback_read_only=True)
    assert viewer.read_only and "this process" in viewer.read_only_reason
    b = proj.add_segment(1, _box(0, 10, 0, 10), 1)
    proj.close()
    again = Project.open(proj.project_dir)
    assert a in again.images[0].segments and b in again.images[1].segments
    again.close()
