"""Polygon formats: labelme JSON export / import and YOLO segmentation export, holes included."""
from __future__ import annotations

import base64
import os
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
    labels = {p.name: p for p in (out / "labels").rglob("*.txt")}
    assert sorted(labels) == ["a.txt", "b.txt"]  # c.png has no segment: left out
    assert sorted(p.name for p in (out / "images").rglob("*.png")) == ["a.png", "b.png"]
    assert {p.parent.name for p in labels.values()} == {"train", "val"}
    for entry, name in zip(project.images[:2], ("a", "b")):
        lines = labels[f"{name}.txt"].read_text().splitlines()
        assert len(lines) == len(entry.segments)  # one line per segment, parts joined
        got = read_yolo_seg(labels[f"{name}.txt"], entry.height, entry.width)
        for (cls, mask), sid in zip(got, sorted(entry.segments)):
            assert cats[cls].id == entry.segments[sid].category_id
            assert iou(mask, entry.labels == sid) > 0.95
        assert (out / "images" / labels[f"{name}.txt"].parent.name / f"{name}.png").is_file()


def test_yolo_reader_refuses_a_malformed_line(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("0 0.1 0.1 0.2 0.2 1.5 0.3\n")
    with pytest.raises(ProjectError, match="x.txt:1"):
        read_yolo_seg(f, H, W)


def test_export_menus_start_in_the_project_folder_and_write(qtbot, project, tmp_path, monkeypatch):
    from annotator._qt import file_actions
    from test_gui import make_window

    win = make_window(qtbot, project)
    asked = []

    def pick(parent, caption, start=""):
        asked.append((caption, start))
        return str(tmp_path / caption.split()[1])  # a folder per format

    monkeypatch.setattr(file_actions, "choose_output_folder", pick)
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


def _hard_masks(rng, h: int, w: int) -> list[np.ndarray]:
    """Disjoint segments of the kinds a polygon finds hard: blobs with holes (and islands in the holes), parts of
    one segment apart from each other, one-pixel-wide lines (straight and slanted), single pixels, a thin ring."""
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), float(rng.uniform(1.5, 4)))
    q = np.quantile(noise, [0.35, 0.55, 0.75])
    masks = [(noise > q[0]) & (noise <= q[1]), noise > q[2]]  # ragged blobs, many parts, holes
    taken = masks[0] | masks[1]
    line = np.zeros((h, w), np.uint8)
    cv2.line(line, (2, 3), (w - 5, h // 3), 1, 1)  # slanted, one pixel wide
    line[h - 3, 5: w - 5] = 1  # straight, one pixel wide: the same segment, a second part
    ring = np.zeros((h, w), np.uint8)
    cv2.circle(ring, (w // 2, h // 2), min(h, w) // 4, 1, 1)  # one-pixel ring round a hole
    dots = np.zeros((h, w), bool)
    dots[rng.integers(0, h, 6), rng.integers(0, w, 6)] = True  # lone pixels
    for extra in (line.astype(bool), ring.astype(bool), dots):
        masks.append(extra & ~taken)
        taken |= extra
    return [m for m in masks if m.any()]


def _labelme_read_back(path, entry):
    """{segment id: mask} as labelme itself reads the file: LabelFile, then shapes_to_label, whose instance ids
    number the (label, group_id) pairs in the order they first appear."""
    from labelme import LabelFile
    from labelme.utils import shapes_to_label

    shapes = LabelFile(path).shapes
    names = {s["label"] for s in shapes}
    cls, ins = shapes_to_label((entry.height, entry.width), shapes, {n: k for k, n in enumerate(sorted(names), 1)})
    order = []
    for s in shapes:
        if (s["label"], s["group_id"]) not in order:
            order.append((s["label"], s["group_id"]))
    return {gid: ins == k for k, (_, gid) in enumerate(order, 1)}, shapes


def test_labelme_export_reads_back_pixel_for_pixel_with_labelme_itself(tmp_path):
    """labelme's own reader rasterises polygons with Pillow (outline on the vertices, even-odd fill): a polygon
    with a hole cut into it, a one-pixel line or a lone pixel did not come back exactly (pixels lost)."""
    pytest.importorskip("labelme")
    h, w = 48, 64
    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(4):
        cv2.imwrite(str(folder / f"i{k}.png"), np.zeros((h, w, 3), np.uint8))
    p = Project.new(folder, tmp_path / "proj")
    other = p.add_category("other")
    rng = np.random.default_rng(5)
    for k in range(4):
        for j, m in enumerate(_hard_masks(rng, h, w)):
            p.add_segment(k, m, 1 if j % 2 else other)
    paths = export_labelme(p, tmp_path / "lm")
    assert len(paths) == 4
    kinds = set()
    for path, entry in zip(paths, p.images):
        got, shapes = _labelme_read_back(path, entry)
        kinds |= {s["shape_type"] for s in shapes}
        assert sorted(got) == sorted(entry.segments)
        for sid in entry.segments:
            want = entry.labels == sid
            assert np.array_equal(got[sid], want), (path, sid, int((want & ~got[sid]).sum()),
                                                    int((got[sid] & ~want).sum()))
    assert "polygon" in kinds  # polygons wherever a polygon is exact, so they stay editable in labelme
    # our own import gives the same segments back
    back = import_labelme(tmp_path / "lm", tmp_path / "imported")
    for old, new in zip(p.images, back.images):
        assert len(new.segments) == len(old.segments)
        for sid in old.segments:
            ids = np.unique(new.labels[old.labels == sid])
            assert len(ids) == 1 and np.array_equal(new.labels == ids[0], old.labels == sid)
    back.close()
    p.close()


# Ultralytics' documented data set rules (docs.ultralytics.com/datasets/segment/), read here without ultralytics
# itself (it needs torchvision, which does not install beside this project's torch): data.yaml's `train` / `val`
# are folders of images relative to `path`; an image's label file is its path with the last `/images/` made
# `/labels/` and the suffix `.txt` (ultralytics.data.utils.img2label_paths); a label line is `class x1 y1 x2 y2
# ...`, coordinates divided by the image's width / height, and the polygon is filled with cv2.fillPoly
# (ultralytics.data.utils.polygon2mask); an image without a label file, or with an empty one, is background.
YOLO_IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}


def read_yolo_dataset(yaml_path) -> dict:
    """{"train" / "val": {image file name: [(class, HxW mask)] or None for background}} as YOLO reads it."""
    import yaml

    data = yaml.safe_load(Path(yaml_path).read_text())
    assert isinstance(data["names"], dict) and "train" in data and "val" in data
    root = Path(data["path"])
    out = {}
    for split in ("train", "val"):
        folder = root / data[split]
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in YOLO_IMAGE_SUFFIXES) if folder.is_dir() else []
        images = {}
        for img in files:
            sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
            label = Path(sb.join(str(img).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")
            h, w = cv2.imread(str(img)).shape[:2]
            rows = []
            if label.is_file():
                for line in label.read_text().splitlines():
                    vals = line.split()
                    assert int(vals[0]) in data["names"]
                    xy = np.asarray(vals[1:], np.float64).reshape(-1, 2)
                    assert ((0 <= xy) & (xy <= 1)).all()
                    m = np.zeros((h, w), np.uint8)
                    cv2.fillPoly(m, [(xy * [w, h]).astype(np.int32)], 1)
                    rows.append((int(vals[0]), m.astype(bool)))
            images[img.name] = rows or None
        out[split] = images
    return out


def test_yolo_export_leaves_never_labelled_images_out_and_splits_train_from_val(tmp_path):
    """An image nobody labelled is not an image of background: exported with an empty label file it taught YOLO
    that its dog is background. And `train` and `val` were the same folder, so validation measured nothing."""
    pytest.importorskip("yaml")
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("labelled.png", "never_labelled.png"):
        cv2.imwrite(str(folder / name), np.zeros((H, W, 3), np.uint8))
    p = Project.new(folder, tmp_path / "proj")
    p.add_segment(0, ring_with_hole_and_island(), 1)
    yaml_path = export_yolo_seg(p, tmp_path / "yolo")
    import yaml

    data = yaml.safe_load(Path(yaml_path).read_text())
    assert data["train"] != data["val"]
    read = read_yolo_dataset(yaml_path)
    everything = {**read["train"], **read["val"]}
    assert set(everything) == {"labelled.png"} and not set(read["train"]) & set(read["val"])
    assert not list((tmp_path / "yolo").rglob("never_labelled*"))  # no image, no empty label file
    [(cls, mask)] = everything["labelled.png"]
    assert cls == 0 and iou(mask, p.images[0].labels == 1) > 0.95  # outline pixels half in, half out
    # asked for, the never-labelled image comes as background (an empty label file), and it says so
    yaml_path = export_yolo_seg(p, tmp_path / "with_background", background=True)
    read = read_yolo_dataset(yaml_path)
    assert {**read["train"], **read["val"]}["never_labelled.png"] is None
    assert "background" in Path(yaml_path).read_text()
    p.close()


def test_yolo_split_is_a_fraction_stable_per_image_name(tmp_path):
    from annotator.polygon_io import yolo_val_split

    names = [f"frame_{k:04d}.jpg" for k in range(400)]
    val = yolo_val_split(names, 0.2)
    assert 0.14 < sum(val) / len(names) < 0.26  # about the fraction asked for
    # an image keeps its split when others are added or removed
    more = yolo_val_split(names + [f"new_{k}.jpg" for k in range(100)], 0.2)
    assert more[: len(names)] == val
    assert yolo_val_split(names[::3], 0.2) == val[::3]
    # neither split is left empty while there are two images
    for pair in (["a.jpg", "b.jpg"], ["x.png", "y.png"]):
        assert sorted(yolo_val_split(pair, 0.2)) == [False, True]
    with pytest.raises(ValueError):
        yolo_val_split(names, 1.0)


def _points(folder) -> int:
    return sum(len(s["points"]) for f in Path(folder).glob("*.json") for s in json.loads(f.read_text())["shapes"])


def test_polygon_tolerance_is_asked_once_per_project_and_remembered(qtbot, project, tmp_path, monkeypatch):
    """The window asks for the polygon tolerance (and YOLO's val fraction and background) in one dialog that
    starts from what this project used last; the choice is kept in project.json."""
    from PyQt5.QtWidgets import QDialog

    from annotator._qt import file_actions
    from annotator._qt.file_actions import PolygonExportDialog
    from test_gui import make_window

    win = make_window(qtbot, project)
    win.confirm_dialogs = True  # the interactive path; the dialog is answered below
    answers, shown = [], []

    def answer(dialog):
        shown.append(dialog.values())
        for key, value in answers.pop(0).items():
            if key == "background":
                dialog.background.setChecked(value)
            else:
                getattr(dialog, key).setValue(value)
        return QDialog.Accepted

    monkeypatch.setattr(PolygonExportDialog, "exec_", answer)
    folders = iter(str(tmp_path / f"out{k}") for k in range(10))
    monkeypatch.setattr(file_actions, "choose_output_folder", lambda *a, **k: next(folders))
    answers.append({})
    assert win.export_labelme()
    assert shown[-1] == {"tolerance": 0.0}  # lossless by default
    lossless = _points(tmp_path / "out0")
    answers.append({"tolerance": 2.0})
    assert win.export_labelme()
    assert _points(tmp_path / "out1") < lossless and "simplified by 2 px" in win.statusBar().currentMessage()
    answers.append({"val_fraction": 0.5, "background": True})
    assert win.export_yolo()
    assert shown[-1] == {"tolerance": 2.0, "val_fraction": 0.2, "background": False}  # the project's tolerance
    assert len(list((tmp_path / "out2" / "labels").rglob("*.txt"))) == 3  # c.png as background, as asked
    assert "background" in win.statusBar().currentMessage()
    win.close()
    project.close()
    reopened = Project.open(project.project_dir, read_only=True)
    assert reopened.settings == {"polygon_tolerance_px": 2.0, "yolo_val_fraction": 0.5, "yolo_background": True}
    # a script passing the folder is not asked; the remembered tolerance still applies
    win2 = make_window(qtbot, reopened)
    assert win2.export_labelme(str(tmp_path / "again")) and _points(tmp_path / "again") == _points(tmp_path / "out1")
    assert not answers


def test_cli_export_takes_the_tolerance_and_yolo_options(project, tmp_path):
    import main

    project.close()
    assert main.main(["export", "labelme", str(project.project_dir), "--out", str(tmp_path / "lm")]) == 0
    assert main.main(["export", "labelme", str(project.project_dir), "--out", str(tmp_path / "lm2"),
                      "--tolerance", "2"]) == 0
    assert _points(tmp_path / "lm2") < _points(tmp_path / "lm")
    assert main.main(["export", "yolo", str(project.project_dir), "--out", str(tmp_path / "y"), "--val-fraction",
                      "0.5", "--background", "--tolerance", "1"]) == 0
    assert len(list((tmp_path / "y" / "labels").rglob("*.txt"))) == 3
    assert main.main(["export", "yolo", str(project.project_dir), "--out", str(tmp_path / "bad"),
                      "--tolerance", "-1"]) == 2
    assert not (tmp_path / "bad").exists()
