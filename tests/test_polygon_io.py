"""Polygon formats (issue 11): labelme JSON export / import and YOLO segmentation export, holes included."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator.document import Project, ProjectError
from annotator.polygon_io import (export_labelme, export_yolo_seg, import_labelme, mask_to_polygons,
                                  polygons_to_mask, read_yolo_seg)

H, W = 90, 120


def ring_with_hole_and_island() -> np.ndarray:
    """A square ring (a hole in it) plus a separate small disk: two parts, one hole."""
    m = np.zeros((H, W), np.uint8)
    cv2.rectangle(m, (10, 10), (60, 60), 1, -1)
    cv2.rectangle(m, (25, 25), (45, 45), 0, -1)
    cv2.circle(m, (95, 70), 9, 1, -1)
    return m.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_polygons_give_the_mask_back_with_its_hole():
    m = ring_with_hole_and_island()
    polys = mask_to_polygons(m)
    assert len(polys) == 2  # one per part, the hole joined into the ring's polygon
    back = polygons_to_mask(polys, H, W)
    assert np.array_equal(back, m)
    assert not back[35, 35]  # the hole stays a hole
    joined = mask_to_polygons(m, join_parts=True)
    assert len(joined) == 1
    back = polygons_to_mask(joined, H, W)
    assert iou(back, m) > 0.97 and not back[35, 35]
    # simplification trades vertices for a little accuracy
    simple = mask_to_polygons(m, epsilon=1.0)
    assert sum(map(len, simple)) <= sum(map(len, polys)) and iou(polygons_to_mask(simple, H, W), m) > 0.95


def test_random_blobs_round_trip_exactly():
    rng = np.random.default_rng(0)
    for _ in range(20):
        noise = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 4)
        m = noise > np.quantile(noise, 0.6)
        back = polygons_to_mask(mask_to_polygons(m), H, W)
        # single pixels / one-pixel lines have no polygon; everything else comes back
        assert iou(back, m) > 0.99


@pytest.fixture
def project(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(images / name), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    p = Project.new(images, tmp_path / "proj")
    tree = p.add_category("tree", isthing=False)
    p.add_segment(0, ring_with_hole_and_island(), 1)
    box = np.zeros((H, W), bool)
    box[70:85, 5:40] = True
    p.add_segment(0, box, tree)
    p.add_segment(1, box, 1)
    yield p  # c.png has no segment
    p.close()


def test_labelme_export_reads_back_with_labelme_itself(project, tmp_path):
    labelme_file = pytest.importorskip("labelme._label_file")
    from labelme.utils import shapes_to_label

    paths = export_labelme(project, tmp_path / "lm")
    assert [Path(p).name for p in paths] == ["a.json", "b.json"]  # only labelled images
    names = {c.name: c.id for c in project.categories}
    for path, entry in zip(paths, project.images):
        data = labelme_file.read_label_file(path)  # labelme's own reader: it also finds and checks the image
        assert {s["label"] for s in data.shapes} == {project.category(s.category_id).name
                                                     for s in entry.segments.values()}
        cls, ins = shapes_to_label((entry.height, entry.width), data.shapes, {"_background_": 0, **names})
        for sid, seg in entry.segments.items():
            assert np.array_equal(ins == sid, entry.labels == sid), (path, sid)  # pixel for pixel, hole included
            assert (cls[entry.labels == sid] == seg.category_id).all()


def test_labelme_export_import_round_trip(project, tmp_path):
    export_labelme(project, tmp_path / "lm")
    back = import_labelme(tmp_path / "lm", tmp_path / "imported")
    assert [e.name for e in back.images] == ["a.png", "b.png"]
    assert sorted(c.name for c in back.categories) == sorted(c.name for c in project.categories)
    for old, new in zip(project.images, back.images):
        assert len(new.segments) == len(old.segments)
        for sid, seg in old.segments.items():
            new_ids = np.unique(new.labels[old.labels == sid])
            assert len(new_ids) == 1 and new_ids[0] != 0
            assert np.array_equal(new.labels == new_ids[0], old.labels == sid)
            assert back.category(new.segments[int(new_ids[0])].category_id).name == \
                project.category(seg.category_id).name
    back.close()
    assert len(Project.open(tmp_path / "imported", read_only=True).images[0].segments) == 2  # saved


def _png_b64(arr: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".png", arr)[1].tobytes()).decode()


def test_labelme_import_of_every_shape_kind(tmp_path):
    img = np.random.default_rng(2).integers(0, 255, (H, W, 3), dtype=np.uint8)
    folder = tmp_path / "lm"
    folder.mkdir()
    cv2.imwrite(str(folder / "photo.jpg"), img)
    crop = np.zeros((10, 12), np.uint8)
    crop[2:8, 3:9] = 255
    shapes = [
        {"label": "car", "points": [[5, 5], [30, 5], [30, 30], [5, 30]], "group_id": 7, "shape_type": "polygon"},
        {"label": "car", "points": [[40, 5], [50, 15]], "group_id": 7, "shape_type": "rectangle"},  # same car
        {"label": "car", "points": [[80, 20], [90, 20]], "group_id": None, "shape_type": "circle"},
        {"label": "sign", "points": [[60, 60], [71, 69]], "shape_type": "mask", "mask": _png_b64(crop)},
        {"label": "road", "points": [[0, 80], [100, 85]], "shape_type": "line"},
    ]
    (folder / "photo.json").write_text(json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes,
                                                   "imagePath": "photo.jpg", "imageData": None,
                                                   "imageHeight": H, "imageWidth": W}))
    # an image known only from its embedded copy
    (folder / "embedded.json").write_text(json.dumps({
        "shapes": [{"label": "car", "points": [[1, 1], [9, 1], [9, 9]], "shape_type": "polygon"}],
        "imagePath": "gone.png", "imageData": _png_b64(img[:20, :30]), "imageHeight": 20, "imageWidth": 30}))
    p = import_labelme(folder, tmp_path / "proj")
    assert [c.name for c in p.categories] == ["car", "sign"]
    e = p.images[[x.name for x in p.images].index("photo.jpg")]
    assert len(e.segments) == 3  # the grouped polygon + rectangle, the circle, the mask
    car = e.labels[15, 15]
    assert car != 0 and e.labels[10, 45] == car  # group 7: one segment
    assert e.labels[20, 85] not in (0, car)
    sign = e.labels[64, 66]
    assert sign != 0 and (e.labels == sign).sum() == 36 and e.labels[61, 61] == 0
    assert any("line" in w and "skipped" in w for w in p.warnings)
    emb = p.images[[x.name for x in p.images].index("embedded.png")]
    assert Path(emb.path).is_file() and emb.read_image().shape[:2] == (20, 30) and emb.labels[3, 7] != 0
    p.close()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable labelme JSON"),
    (json.dumps({"shapes": "x"}), "no 'shapes' list"),
    (json.dumps({"shapes": [], "imagePath": "absent.png", "imageData": None}), "missing and not embedded"),
    (json.dumps({"shapes": [{"label": "a", "points": [[1, 2]], "shape_type": "polygon"}],
                 "imagePath": "ok.png", "imageData": None}), "at least 3 points"),
    (json.dumps({"shapes": [{"points": [[1, 2], [3, 4], [5, 1]]}], "imagePath": "ok.png"}), "label"),
    (json.dumps({"shapes": [], "imagePath": "ok.png", "imageHeight": 5, "imageWidth": 5}), "the image is"),
])
def test_labelme_import_names_the_file_and_the_problem(tmp_path, content, message):
    folder = tmp_path / "lm"
    folder.mkdir()
    cv2.imwrite(str(folder / "ok.png"), np.zeros((H, W, 3), np.uint8))
    (folder / "bad.json").write_text(content)
    with pytest.raises(ProjectError) as err:
        import_labelme(folder, tmp_path / "proj")
    assert "bad.json" in str(err.value) and message in str(err.value)
    assert not (tmp_path / "proj" / "project.json").exists()  # nothing half-made


def test_yolo_export(project, tmp_path):
    yaml_path = export_yolo_seg(project, tmp_path / "yolo")
    out = Path(yaml_path).parent
    text = Path(yaml_path).read_text()
    cats = sorted(project.categories, key=lambda c: c.id)
    for k, c in enumerate(cats):
        assert f'{k}: "{c.name}"' in text
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["a.txt", "b.txt", "c.txt"]
    assert (out / "labels" / "c.txt").read_text() == ""  # a negative example
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.png", "b.png", "c.png"]
    for entry, name in zip(project.images[:2], ("a", "b")):
        lines = (out / "labels" / f"{name}.txt").read_text().splitlines()
        assert len(lines) == len(entry.segments)  # one line per segment, parts joined
        got = read_yolo_seg(out / "labels" / f"{name}.txt", entry.height, entry.width)
        for (cls, mask), sid in zip(got, sorted(entry.segments)):
            assert cats[cls].id == entry.segments[sid].category_id
            assert iou(mask, entry.labels == sid) > 0.95


def test_yolo_reader_refuses_a_malformed_line(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("0 0.1 0.1 0.2 0.2 1.5 0.3\n")
    with pytest.raises(ProjectError, match="x.txt:1"):
        read_yolo_seg(f, H, W)


def test_export_menus_start_in_the_project_folder_and_write(qtbot, project, tmp_path, monkeypatch):
    from PyQt5.QtWidgets import QFileDialog

    from test_gui import make_window

    win = make_window(qtbot, project)
    asked = []

    def pick(parent, caption, start=""):
        asked.append((caption, start))
        return str(tmp_path / caption.split()[1])  # a folder per format

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick)
    menu = {a.text().split("\t")[0]: a for m in win.menuBar().actions() for a in m.menu().actions()}
    menu["labelme JSON…"].trigger()
    menu["YOLO segmentation…"].trigger()
    assert [start for _, start in asked] == [str(project.project_dir)] * 2
    assert (tmp_path / "labelme" / "a.json").is_file()
    assert (tmp_path / "YOLO" / "data.yaml").is_file()
    # and the imported labelme folder opens as a project in the window
    assert win.import_labelme(str(tmp_path / "labelme"), str(tmp_path / "from_labelme"))
    assert win.project.project_dir == (tmp_path / "from_labelme").resolve()
    assert len(win.project.images[0].segments) == 2
