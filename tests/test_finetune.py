"""Fine-tuning on a project's own annotations: the separate process the GUI starts (annotator.finetune_job: the
project exported as COCO panoptic, then train.finetune on that export), `python -m train finetune` on a COCO
panoptic JSON, the progress file, the held-out before/after report, provenance, Cancel via the STOP file, and switching a running
Segmenter to the new weights. Tiny settings (64 px crops, 3 steps, untrained base net), so no data set and no
trained weights are needed."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from annotator import finetune_job as job
from annotator.coco_io import export_coco_panoptic
from annotator.document import Project
from model import Segmenter
from model.net import PointerSegNet
from model.weights import save_weights
from train import finetune as ft
from train.coco_panoptic import CocoPanopticReader
from train.synthetic import SyntheticScenes

REPO = Path(__file__).resolve().parent.parent
TINY = dict(steps=3, crop=64, batch_size=2, threads=1, workers=0, lr=1e-3, eval_max_objects=2, eval_max_clicks=3)


def _make_project(root: Path, n: int = 6) -> Path:
    """A project whose images are labelled through the document model, as a person's accepted segments."""
    images = root / "images"
    images.mkdir(parents=True)
    scenes = SyntheticScenes(n, size=(96, 96), seed=3)
    for i in range(n):
        cv2.imwrite(str(images / f"scene{i}.png"), cv2.cvtColor(scenes[i].image, cv2.COLOR_RGB2BGR))
    project = Project.new(images, root / "project")
    for i, entry in enumerate(project.images):
        sample = scenes[int(Path(entry.path).stem[len("scene"):])]
        for mask in sample.segments:
            project.add_segment(i, mask, 1)
    return root / "project"


def _base_weights(path: Path) -> Path:
    torch.manual_seed(5)  # an untrained net that answers partial masks (not "everything")
    save_weights(PointerSegNet(pretrained_backbone=False), path)
    return path


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One full fine-tune of a project as a subprocess, as the GUI starts it (export, then train.finetune), and
    `python -m train finetune` on a COCO panoptic export, cancelled before it started (STOP created in advance),
    run in this process: the same `main`, without paying a second interpreter's start (about 6 s)."""
    root = tmp_path_factory.mktemp("ft")
    project = _make_project(root)
    base = _base_weights(root / "base.safetensors")
    out = root / "run"
    command = job.build_command(project, out, base=base, **TINY)
    assert command[1:3] == ["-m", "annotator.finetune_job"]
    full = _run(command)
    export = Path(export_coco_panoptic(Project.open(project, read_only=True), root / "export"))
    stopped_out = root / "stopped"
    stopped_out.mkdir()
    (stopped_out / ft.STOP_NAME).touch()
    command = ft.build_command(export, stopped_out, base=base, **TINY)
    assert command[1:4] == ["-m", "train", "finetune"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = ft.main(command[4:])
    stopped = subprocess.CompletedProcess(command, code, "", stderr.getvalue())
    return {"root": root, "project": project, "base": base, "out": out, "full": full, "export": export,
            "stopped_out": stopped_out, "stopped": stopped}


def test_build_command_is_a_python_module_call(tmp_path):
    cmd = ft.build_command(tmp_path / "p", tmp_path / "o", steps=5, grabcut=True, no_eval=False)
    assert cmd[:4] == [sys.executable, "-m", "train", "finetune"]
    assert cmd[cmd.index("--steps") + 1] == "5" and "--grabcut" in cmd and "--no-eval" not in cmd
    with pytest.raises(TypeError):
        ft.build_command(tmp_path / "p", tmp_path / "o", stepz=5)


def test_report_has_before_and_after_on_held_out_images(runs):
    assert runs["full"].returncode == 0, runs["full"].stderr[-3000:]
    out = runs["out"]
    report = json.loads((out / "report.json").read_text())
    assert not report["stopped"] and report["steps_done"] == 3
    assert report["val_images"] and report["train_images"]
    assert not set(report["val_images"]) & set(report["train_images"])
    assert report["eval_objects"] > 0
    for key in ("before", "after"):
        m = report[key]
        assert 1 <= m["noc90"] <= TINY["eval_max_clicks"]
        assert 0.0 <= m["iou_at_1"] <= 1.0
        assert m["n_objects"] == report["eval_objects"]
    # The table is printed for the person running the command.
    assert "NoC@90" in runs["full"].stdout and "after (fine-tuned)" in runs["full"].stdout
    # The trainer only ever saw the training split.
    train_names = {Path(im["file_name"]).name for im in json.loads((out / "data/train.json").read_text())["images"]}
    val_reader = CocoPanopticReader(out / "data/val.json")
    assert train_names == set(report["train_images"])
    assert {Path(val_reader.images[a["image_id"]]["file_name"]).name for a in val_reader.annotations} \
        == set(report["val_images"])


def test_provenance_and_progress(runs):
    out = runs["out"]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["base_weights"] == str(runs["base"].resolve())
    assert prov["base_weights_sha256"] == ft.sha256_file(runs["base"])
    assert prov["weights_sha256"] == ft.sha256_file(out / "weights.safetensors")
    assert prov["data"]["val_images"] and prov["steps"] == 3
    assert prov["metrics"]["before"]["noc90"] is not None and prov["metrics"]["after"]["noc90"] is not None
    assert prov["command"][:3] == [sys.executable, "-m", "annotator.finetune_job"] and prov["wall_s"] > 0
    assert all("data/train.json" in s or "data/val.json" in s for s in prov["train_config"]["sources"])
    records = ft.read_progress(out)
    steps = [r for r in records if r.get("phase") == "train" and "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3] and all(r["steps"] == 3 and "eta_s" in r for r in steps)
    assert records[-1]["done"] is True and records[-1]["report"]["after"]["noc90"] is not None
    assert (out / "log.csv").is_file()
    # The trainer's resume checkpoint (weights + optimiser state, three times the weights' size) is gone: a
    # fine-tune never resumes.
    assert not (out / "checkpoint.pt").exists()


def test_stop_file_cancels_cleanly_and_keeps_weights(runs):
    r = runs["stopped"]
    assert r.returncode == 0, r.stderr[-3000:]
    out = runs["stopped_out"]
    report = json.loads((out / "report.json").read_text())
    assert report["stopped"] and report["steps_done"] < 3
    assert report["after"] is None  # no measurement after a cancel
    assert ft.read_progress(out)[-1] == {"done": True, "stopped": True, "report": report}
    seg = Segmenter.from_pretrained(out / "weights.safetensors", device="cpu")
    assert seg.info["steps"] == report["steps_done"]
    assert not (out / "checkpoint.pt").exists()  # a cancelled run leaves its weights, not the resume checkpoint
    assert report["before"] is None and not ft.too_few_objects(report)  # nothing measured, nothing to warn of


def test_switching_weights_changes_a_running_segmenter(runs):
    sample = SyntheticScenes(1, size=(96, 96), seed=11)[0]
    x, y = 40, 50
    seg = Segmenter.from_pretrained(runs["base"], device="cpu")
    before = seg.predict(sample.image, [(x, y, True)])
    again = Segmenter.from_pretrained(runs["base"], device="cpu").predict(sample.image, [(x, y, True)])
    assert before.score == again.score and np.array_equal(before.mask, again.mask)  # deterministic control
    info = seg.load_weights(runs["out"] / "weights.safetensors")
    assert info["steps"] == 3
    after = seg.predict(sample.image, [(x, y, True)])
    assert after.score != before.score or not np.array_equal(after.mask, before.mask)


def test_bundled_weights_folder_is_refused(tmp_path, monkeypatch):
    project = _make_project(tmp_path, n=2)
    base = _base_weights(tmp_path / "base.safetensors")
    resources = tmp_path / "resources"
    resources.mkdir()
    monkeypatch.setattr(ft, "_bundled_weights", lambda: resources / "pointer_seg.safetensors")
    with pytest.raises(ft.FinetuneError, match="bundled"):
        ft.finetune(job.ProjectExport(project), resources, base_weights=base, **TINY)
    assert not (resources / "weights.safetensors").exists()
    assert not (resources / "pointer_seg.safetensors").exists()


def test_unlabelled_project_gives_a_clear_error(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((32, 32, 3), np.uint8))
    Project.new(images, tmp_path / "project")
    base = _base_weights(tmp_path / "base.safetensors")
    argv = job.build_command(tmp_path / "project", tmp_path / "out", base=base, **TINY)[3:]
    assert job.main(argv) == 2
    assert "no image has an accepted segment" in capsys.readouterr().err
    last = ft.read_progress(tmp_path / "out")[-1]  # the GUI reads the reason from the progress file
    assert last["done"] and "accepted segment" in last["error"]
    assert not (tmp_path / "out" / "weights.safetensors").exists()


def test_unusable_replay_source_is_refused_before_any_work(tmp_path, capsys):
    project = _make_project(tmp_path, n=2)
    base = _base_weights(tmp_path / "base.safetensors")
    missing = tmp_path / "no_such_photos"
    argv = job.build_command(project, tmp_path / "out", base=base, replay=[f"masks:{missing}"], **TINY)[3:]
    assert argv[argv.index("--replay") + 1] == f"masks:{missing}"
    assert job.main(argv) == 2
    err = capsys.readouterr().err
    assert "--replay" in err and str(missing) in err
    assert not (tmp_path / "out" / "weights.safetensors").exists()


def test_split_is_stable_and_holds_out_at_least_one():
    names = [f"img{i:03d}" for i in range(40)]
    train, val = ft.split_names(names, 0.2)
    assert 1 <= len(val) < len(names) and not set(train) & set(val) and set(train) | set(val) == set(names)
    train2, val2 = ft.split_names(names + [f"new{i}" for i in range(10)], 0.2)
    assert set(val) <= set(val2) and set(train) <= set(train2)  # adding images moves no old image
    t, v = ft.split_names(["a", "b"], 0.2)
    assert len(t) == 1 and len(v) == 1
    with pytest.raises(ft.FinetuneError):
        ft.split_names(["only"], 0.2)


def test_coco_json_source_is_split_and_copied(tmp_path):
    project = _make_project(tmp_path, n=5)
    json_path = export_coco_panoptic(Project.open(project), tmp_path / "export")
    data = ft.prepare_data(json_path, tmp_path / "run" / "data", val_fraction=0.2)
    assert len(data["val"]) >= 1 and len(data["train"]) + len(data["val"]) == 5
    train, val = CocoPanopticReader(data["train_json"]), CocoPanopticReader(data["val_json"])
    assert train.png_dir == tmp_path / "run" / "data" / "panoptic"  # the run holds a copy of its data
    assert sorted(train.names + val.names) == sorted(CocoPanopticReader(json_path).names)
    sample = val[0]
    assert sample.segments and sample.image.shape == (96, 96, 3)
    # The trainer's own hash split sees train.json as all-training and val.json as all-validation.
    frac = ft._trainer_fraction(data["train_names"], data["val_names"])
    from train.trainer import split_sources
    tr, va = split_sources([ft._source_spec(data["train_json"], 1), ft._source_spec(data["val_json"], 0)], frac)
    assert [len(s) for s, _, _ in tr] == [len(train), 0] and [len(s) for s, _ in va] == [len(val)]


def test_the_trainer_refuses_a_project_folder_and_names_the_command_that_takes_one(tmp_path, capsys):
    project = _make_project(tmp_path, n=2)
    base = _base_weights(tmp_path / "base.safetensors")
    argv = ft.build_command(project, tmp_path / "out", base=base, **TINY)[4:]
    assert ft.main(argv) == 2
    err = capsys.readouterr().err
    assert "not a COCO panoptic JSON" in err and "main.py finetune" in err
    assert not (tmp_path / "out" / "weights.safetensors").exists()


def test_a_missing_project_is_reported_in_the_progress_file(tmp_path, capsys):
    base = _base_weights(tmp_path / "base.safetensors")
    argv = job.build_command(tmp_path / "nowhere", tmp_path / "out", base=base, **TINY)[3:]
    assert job.main(argv) == 2
    assert "nowhere" in capsys.readouterr().err
    last = ft.read_progress(tmp_path / "out")[-1]
    assert last["done"] and "exporting the project failed" in last["error"]


def test_too_few_held_out_objects_are_called_inconclusive(runs):
    report = json.loads((runs["out"] / "report.json").read_text())
    assert report["eval_objects"] < ft.MIN_EVAL_OBJECTS  # a 6-image project: 1 or 2 held-out images
    assert ft.too_few_objects(report)
    assert "too few to tell" in runs["full"].stdout  # the printed table says the comparison means nothing
    many = dict(report, eval_objects=ft.MIN_EVAL_OBJECTS)
    assert not ft.too_few_objects(many) and "too few" not in ft.format_table(many)


def test_a_kept_run_brings_only_its_weights_and_records_into_the_project(runs, tmp_path):
    run = tmp_path / "scratch"
    shutil.copytree(runs["out"], run)
    project = runs["project"]
    kept = job.keep_result(run, project)
    assert kept.parent.parent == project / "finetune"
    assert sorted(p.name for p in kept.parent.iterdir()) == sorted(job.KEPT_FILES)
    assert ft.sha256_file(kept) == ft.sha256_file(run / "weights.safetensors")
    assert json.loads((kept.parent / "report.json").read_text())["weights"] == str(kept)
    assert json.loads((kept.parent / "provenance.json").read_text())["weights"] == str(kept)
    size = sum(p.stat().st_size for p in kept.parent.iterdir())
    assert size < 1.2 * kept.stat().st_size + 100_000, size  # the weights and a few small records, no data copy
    job.discard(run)
    assert not run.exists()
