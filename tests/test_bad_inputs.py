"""Bad and unusual input at every entry point that can receive it: images (16 valid-but-unusual kinds,
13 broken ones), project.json (14 ways broken), COCO panoptic files (9), weights files (6), clicks and ROIs (4).

Each case must give either a working result or a clear error that names the file and what is wrong: no
traceback shown to the user, no hang, and earlier accepted work intact.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bad_inputs import W, H, _rgb, coco_variants, image_corpus, project_json_variants, write_variant

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus") / "images"
    return folder, image_corpus(folder)  # the 30000x30000 bomb too: refused from its header


def _labelled_project(tmp_path, name="proj"):
    from annotator.document import Project

    imgs = tmp_path / f"{name}_imgs"
    imgs.mkdir()
    for i in range(2):
        cv2.imwrite(str(imgs / f"im{i}.png"), cv2.cvtColor(_rgb(i), cv2.COLOR_RGB2BGR))
    p = Project.new(imgs, tmp_path / name)
    m = np.zeros((H, W), bool)
    m[5:20, 5:20] = True
    p.add_segment(0, m, 1)
    return p


# ---------------------------------------------------------------------------------------------- images
def test_image_corpus_into_a_project(corpus, tmp_path):
    from annotator.document import Project

    folder, cases = corpus
    project = Project.new(folder, tmp_path / "p")
    names = {Path(e.path).name for e in project.images}
    for kind, (path, readable) in cases.items():
        if readable:
            assert path.name in names, kind
            entry = project.images[[Path(e.path).name for e in project.images].index(path.name)]
            assert entry.read_image().shape[:2] == (entry.height, entry.width)
        else:
            assert path.name not in names, kind
    # every broken regular file is reported by name (links to nowhere, folders and pipes are not image files)
    skipped = "\n".join(project.skipped)
    for kind in ("zero_bytes_jpeg", "truncated_jpeg", "truncated_png", "text_named_jpg", "html_named_png",
                 "png_header_only", "jpeg_with_garbage", "zero_bytes_png", "bomb_30000px_png"):
        assert cases[kind][0].name in skipped, kind
    # a label drawn on the EXIF-rotated photo has the displayed (rotated) shape
    rot = project.images[[Path(e.path).name for e in project.images].index("exif_rotated.jpg")]
    assert (rot.width, rot.height) == (H, W)


def test_image_corpus_via_main_segment(corpus, tmp_path, capsys, monkeypatch):
    import main as main_module

    # The bundled weights load once, not once per readable file (about 1 s each): this test is about the files.
    loaded = []
    real_load = main_module._load_segmenter

    def load_once(*args, **kwargs):
        if not loaded:
            loaded.append(real_load(*args, **kwargs))
        return loaded[0]

    monkeypatch.setattr(main_module, "_load_segmenter", load_once)
    folder, cases = corpus
    for kind, (path, readable) in cases.items():
        out = tmp_path / f"{kind}.png"
        try:
            code = main_module.main(["segment", str(path), "--out", str(out)])
            message = ""
        except SystemExit as e:
            code, message = e.code, str(e.code)
        if readable:
            assert code == 0 and out.is_file(), (kind, message)
            assert cv2.imread(str(out)) is not None
        else:
            assert code not in (0, None) and isinstance(code, str), kind
            assert message.startswith("error: ") and path.name in message, (kind, message)
            assert "Traceback" not in message


def test_image_corpus_via_main_auto(corpus, tmp_path):
    folder, cases = corpus
    out = tmp_path / "auto"
    r = subprocess.run([sys.executable, "main.py", "auto", str(folder), "--out", str(out), "--random-init"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    data = json.loads((out / "panoptic.json").read_text())
    exported = {Path(im["file_name"]).name for im in data["images"]}
    readable = {p.name for p, ok in cases.values() if ok}
    assert exported == readable
    for kind in ("truncated_jpeg", "text_named_jpg", "zero_bytes_png"):
        assert cases[kind][0].name in r.stdout + r.stderr, kind


def test_image_corpus_in_the_window(corpus, qtbot, tmp_path):
    """Opening each file from the app: readable ones open, broken ones say why; the open project's accepted
    work is untouched."""
    from annotator._qt.main_window import MainWindow
    from annotator.document import Project
    from test_gui import FakeSegmenter

    folder, cases = corpus
    project = _labelled_project(tmp_path)
    before = project.json_path.read_bytes()
    win = MainWindow(project, segmenter=FakeSegmenter(), confirm_dialogs=False)
    qtbot.addWidget(win)
    for kind, (path, readable) in cases.items():
        if readable:
            continue
        n = len(win.messages)
        assert not win.open_path(str(path)), kind
        assert path.name in "\n".join(win.messages[n:]), (kind, win.messages[n:])
        assert win.project is project and not path.with_name(path.stem + ".annot").exists()
    assert project.json_path.read_bytes() == before
    assert len(json.loads(project.json_path.read_text())["images"][0]["segments"]) == 1
    ok_kinds = [k for k, (_, ok) in cases.items() if ok][:4]
    for kind in ok_kinds:
        path = cases[kind][0]
        assert win.open_path(str(path), str(tmp_path / f"{kind}.annot")), (kind, win.messages[-1:])
        assert win.image is not None


def test_masks_folder_with_broken_images_in_train_evaluate(tmp_path, capsys):
    from train.evaluate import main as evaluate_main

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    img = _rgb(3)
    cv2.imwrite(str(root / "images" / "good.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    mask = np.zeros((H, W), np.uint8)
    mask[8:24, 12:36] = 255
    for name in ("good", "broken", "wrongsize"):
        cv2.imwrite(str(root / "masks" / f"{name}.png"), mask if name != "wrongsize" else mask[:10, :10])
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cv2.imwrite(str(root / "images" / "wrongsize.png"), img)
    out = tmp_path / "r.json"
    assert evaluate_main(["clicks", "--data", f"masks:{root}", "--random-init", "--threads", "1", "--quiet",
                          "--max-clicks", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n_images"] == 1
    errors = " ".join(s["error"] for s in r["skipped"])
    assert "broken.png" in errors and "wrongsize.png" in errors and "differs from its image" in errors


# ---------------------------------------------------------------------------------------------- project.json
@pytest.fixture(scope="module")
def good_project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("goodproj")
    p = _labelled_project(tmp)
    data = json.loads(p.json_path.read_text())
    if hasattr(p, "close"):
        p.close()
    return p.project_dir, data


@pytest.mark.parametrize("kind", ["not_json", "empty_file", "json_list", "missing_images", "images_not_a_list",
                                  "image_without_path", "width_is_text", "negative_segment_id", "huge_segment_id",
                                  "unknown_category_in_segment", "label_map_missing", "label_map_outside_project",
                                  "categories_wrong_type", "duplicate_category_ids"])
def test_broken_project_json(kind, good_project, tmp_path, qtbot, capsys):
    from annotator._qt.main_window import MainWindow
    from annotator.document import Project, ProjectError
    from test_gui import FakeSegmenter
    from annotator.finetune_job import main as finetune_main  # `python main.py finetune PROJECT`

    src, data = good_project
    d = tmp_path / "proj"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("project.lock*"))
    write_variant(d / "project.json", project_json_variants(data)[kind])
    content = (d / "project.json").read_bytes()
    with pytest.raises(ProjectError, match="project.json"):
        Project.open(d)
    win = MainWindow(None, segmenter=FakeSegmenter(), confirm_dialogs=False)
    qtbot.addWidget(win)
    assert not win.open_path(str(d))
    assert "project.json" in win.messages[-1]
    assert finetune_main([str(d), "--steps", "1", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert "finetune: error:" in err and "project.json" in err and "Traceback" not in err
    assert (d / "project.json").read_bytes() == content   # left untouched for the person to fix


def test_read_only_project_folder_cannot_lose_work(good_project, tmp_path):
    """A project on a read-only folder (a mounted share, a backup): it opens; an edit that cannot be saved is
    reported as an OSError and stays in memory, and the files on disk are unchanged."""
    import os

    from annotator.document import Project

    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    src, _ = good_project
    d = tmp_path / "ro"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("project.lock*"))
    before = (d / "project.json").read_bytes()
    os.chmod(d, 0o555)
    try:
        p = Project.open(d)
        m = np.zeros((H, W), bool)
        m[25:30, 30:40] = True
        with pytest.raises(OSError):
            p.add_segment(1, m, 1)
        assert len(p.images[1].segments) == 1
        assert (d / "project.json").read_bytes() == before
    finally:
        os.chmod(d, 0o755)


# ---------------------------------------------------------------------------------------------- COCO files
@pytest.fixture(scope="module")
def good_export(tmp_path_factory):
    from annotator.coco_io import export_coco_panoptic

    tmp = tmp_path_factory.mktemp("goodexport")
    p = _labelled_project(tmp)
    j = Path(export_coco_panoptic(p, tmp / "export"))
    if hasattr(p, "close"):
        p.close()
    return j.parent, json.loads(j.read_text())


@pytest.mark.parametrize("kind", ["not_json", "missing_annotations", "missing_png", "duplicate_image_ids",
                                  "segment_id_not_in_png", "unknown_category", "file_name_dotdot",
                                  "file_name_absolute", "png_name_dotdot"])
def test_broken_coco_panoptic(kind, good_export, tmp_path, qtbot, capsys):
    from annotator._qt.main_window import MainWindow
    from annotator.coco_io import import_coco_panoptic
    from annotator.document import ProjectError
    from test_gui import FakeSegmenter
    from train.evaluate import main as evaluate_main

    src, data = good_export
    d = tmp_path / "export"
    shutil.copytree(src, d)
    write_variant(d / "panoptic.json", coco_variants(data)[kind])
    with pytest.raises(ProjectError) as err:
        import_coco_panoptic(d / "panoptic.json", project_dir=tmp_path / "imported")
    assert str(d) in str(err.value)
    assert not (tmp_path / "imported" / "project.json").exists()
    # opened from the app (main.py EXPORT/panoptic.json): a message naming the file, no project left behind
    win = MainWindow(None, segmenter=FakeSegmenter(), confirm_dialogs=False)
    qtbot.addWidget(win)
    assert not win.open_path(str(d / "panoptic.json"))
    assert str(d) in win.messages[-1]
    assert not (d / "panoptic.annot" / "project.json").exists()
    # read by the evaluator: a clear error (exit 2) or the bad image skipped with its reason, never a traceback
    code = evaluate_main(["full", "--data", f"coco:{d / 'panoptic.json'}", "--random-init", "--threads", "1",
                          "--quiet"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert code == 2 and "error:" in out.err or code == 0 and "skipping" in out.err, (code, out.err[-500:])


# ---------------------------------------------------------------------------------------------- weights
def _weights_variants(tmp_path: Path) -> dict[str, Path]:
    from model.net import PointerSegNet
    from model.weights import save_weights

    good = tmp_path / "good.safetensors"
    torch.manual_seed(0)
    save_weights(PointerSegNet(pretrained_backbone=False), good)
    raw = good.read_bytes()
    out = {}
    (out.setdefault("truncated", tmp_path / "truncated.safetensors")).write_bytes(raw[: len(raw) // 2])
    (out.setdefault("empty", tmp_path / "empty.safetensors")).write_bytes(b"")
    (out.setdefault("random_bytes", tmp_path / "noise.safetensors")).write_bytes(np.random.bytes(4096))
    torch.save({"x": torch.zeros(3)}, out.setdefault("pickle", tmp_path / "pickled.safetensors"))
    from safetensors.torch import save_file

    save_file({"stem.0.weight": torch.zeros(3, 3)}, str(out.setdefault("wrong_shapes", tmp_path / "wrong.safetensors")),
              metadata={"arch": "pointer-roi-efficientnet-lite0-v1"})
    out["missing"] = tmp_path / "not_there.safetensors"
    return out


def test_broken_weights_everywhere(tmp_path, capsys, qtbot):
    import main as main_module
    from model import Segmenter, WeightsError
    from train.evaluate import main as evaluate_main

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), _rgb(1))
    for kind, path in _weights_variants(tmp_path).items():
        with pytest.raises(WeightsError, match=path.name):
            Segmenter.from_pretrained(path)
        with pytest.raises(SystemExit) as e:
            main_module.main(["segment", str(img), "--weights", str(path), "--out", str(tmp_path / "o.png")])
        assert str(e.value.code).startswith("error: ") and path.name in str(e.value.code), kind
        assert evaluate_main(["single", "--data", "synthetic:2", "--weights", str(path), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert path.name in err and "Traceback" not in err, (kind, err[-300:])


def test_broken_weights_in_the_window_keep_manual_editing(tmp_path, qtbot):
    from annotator._qt.main_window import MainWindow
    from model import Segmenter

    project = _labelled_project(tmp_path)
    bad = _weights_variants(tmp_path)["truncated"]
    win = MainWindow(project, segmenter_factory=lambda: Segmenter.from_pretrained(bad), confirm_dialogs=False)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: "no model" in win.device, timeout=20000)
    assert any(bad.name in m for m in win.messages)
    assert len(project.images[0].segments) == 1


# ---------------------------------------------------------------------------------------------- clicks and ROIs
def test_clicks_outside_and_extreme_rois():
    from model import Segmenter

    seg = Segmenter.random_init(seed=0)
    img = _rgb(2)
    with pytest.raises(ValueError, match="outside"):
        seg.predict(img, [(W + 5, 3, True)])
    with pytest.raises(ValueError, match="outside"):
        seg.predict(img, [(-1, 3, True)])
    empty = np.zeros((H, W), bool)
    pred = seg.predict(img, [(10, 10, True)], roi=empty)
    assert not pred.mask.any() and pred.score == 0.0
    assert not seg.segment_image(img, roi=empty).any()
    full = np.ones((H, W), bool)
    assert seg.predict(img, [(10, 10, True)], roi=full).mask.shape == (H, W)
    with pytest.raises(ValueError, match="shape"):
        seg.predict(img, [(10, 10, True)], roi=np.ones((H + 1, W), bool))


def test_a_folder_whose_images_are_in_subfolders_is_refused_with_the_subfolders_named(tmp_path):
    """`main.py auto DATASET --out X` on a data set whose photos sit in DATASET/images/ said
    "auto-segmented 0 of 0 images", wrote an empty export and exited 0; the window said only "no image files"."""
    from annotator._qt.main_window import open_project_for
    from annotator.document import ProjectError

    dataset = tmp_path / "dataset"
    (dataset / "images").mkdir(parents=True)
    (dataset / "masks").mkdir()
    for i in range(3):
        cv2.imwrite(str(dataset / "images" / f"im{i}.jpg"), cv2.cvtColor(_rgb(i), cv2.COLOR_RGB2BGR))
    r = subprocess.run([sys.executable, "main.py", "auto", str(dataset), "--out", str(tmp_path / "out"),
                        "--random-init"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "no image files" in r.stderr and "images/ (3)" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "panoptic.json").exists()
    with pytest.raises(ProjectError, match=r"images/ \(3\)"):
        open_project_for(str(dataset), str(tmp_path / "proj"))
