"""Fine-tuning from the annotator window (pytest-qt, offscreen): Model ▸ Fine-tune on this project… starts
`python -m train finetune` as a separate process; the panel follows it live, shows the before/after table on
the held-out images, and "Use new weights now" switches the running Segmenter. Also Cancel, a failing run,
Model ▸ Load weights… and the overlay with 24-bit COCO segment ids.

Tiny settings (64 px crops, batch 2, a few steps, an untrained base net saved to a file), so no data set and no
trained weights are needed; the runs are real subprocesses.
"""
from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PyQt5.QtCore import QElapsedTimer, Qt, QTimer
from PyQt5.QtWidgets import QDialogButtonBox

from annotator.document import Project
from model import Segmenter
from model.net import PointerSegNet
from model.weights import save_weights
from train.synthetic import SyntheticScenes

TINY = dict(threads=1, workers=0, lr=1e-3, eval_max_objects=2, eval_max_clicks=3)
RUN_TIMEOUT_MS = 150_000  # generous: the CPU is shared with other jobs


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Synthetic images (with their true segments) and untrained base weights saved to a file."""
    root = tmp_path_factory.mktemp("guift")
    images = root / "images"
    images.mkdir()
    scenes = SyntheticScenes(6, size=(96, 96), seed=3)
    for i in range(len(scenes)):
        cv2.imwrite(str(images / f"scene{i}.png"), cv2.cvtColor(scenes[i].image, cv2.COLOR_RGB2BGR))
    torch.manual_seed(5)  # an untrained net that answers partial masks (not "everything")
    base = root / "base.safetensors"
    save_weights(PointerSegNet(pretrained_backbone=False), base)
    return {"root": root, "images": images, "scenes": scenes, "base": base}


def labelled_project(assets, name: str) -> Project:
    """A project whose images are labelled through the document model, like a person's accepted segments."""
    project = Project.new(assets["images"], assets["root"] / name)
    for i, entry in enumerate(project.images):
        sample = assets["scenes"][int(Path(entry.path).stem[len("scene"):])]
        for mask in sample.segments:
            project.add_segment(i, mask, 1)
    return project


def make_window(qtbot, project, base):
    from annotator._qt.main_window import MainWindow

    seg = Segmenter.from_pretrained(base, device="cpu")
    win = MainWindow(project, segmenter=seg, confirm_dialogs=False, weights_path=str(base))
    win.finetune_defaults.update(TINY)
    win.finetune_poll_ms = 100
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.device == "cpu", timeout=10000)
    return win, seg


def start_from_menu(qtbot, win, base, steps: int):
    """Model ▸ Fine-tune on this project…, set the options in the dialog, press Start."""
    win.action_finetune.trigger()
    dlg = win.finetune_dialog
    assert dlg is not None and dlg.isVisible()
    assert dlg.base.text() == str(base)  # the base is the weights loaded now
    dlg.steps.setValue(steps)
    dlg.crop.setValue(64)
    dlg.batch_size.setValue(2)
    with qtbot.waitSignal(win.finetune_started, timeout=5000) as started:
        qtbot.mouseClick(dlg.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    run = started.args[0]
    assert run.running and run.options["steps"] == steps and run.options["crop"] == 64
    assert run.command[1:3] == ["-m", "annotator.finetune_job"]  # a separate process, not a thread of the GUI
    assert not run.out_dir.resolve().is_relative_to(Path(win.project.project_dir).resolve())  # a scratch folder
    return run


class Heartbeat:
    """10 ms timer in the GUI thread; keeps the gaps between ticks seen while `active()` holds."""

    def __init__(self, active) -> None:
        self.active = active
        self.gaps: list = []
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = self.clock.elapsed()
        self.was_active = False
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(10)

    def _tick(self) -> None:
        now = self.clock.elapsed()
        active = self.active()
        if active and self.was_active:  # both ends of the gap inside the run (not the click on Start)
            self.gaps.append(now - self.last)
        self.last, self.was_active = now, active

    def stop(self) -> None:
        self.timer.stop()


def test_finetune_from_menu_table_and_use_new_weights(qtbot, assets):
    project = labelled_project(assets, "proj_full")
    labels_before = [np.array(e.labels) for e in project.images]
    base_sha = _sha(assets["base"])
    win, seg = make_window(qtbot, project, assets["base"])
    hb = Heartbeat(lambda: win.finetune_run is not None and win.finetune_run.running)

    run = start_from_menu(qtbot, win, assets["base"], steps=3)
    panel = win.finetune_panel
    assert win.finetune_dock.isVisible() and panel.state == "running" and panel.cancel_btn.isEnabled()
    with qtbot.waitSignal(win.finetune_finished, timeout=RUN_TIMEOUT_MS) as finished:
        pass
    hb.stop()
    assert finished.args == ["done"], panel.error.toPlainText()

    # The event loop kept serving the 10 ms heartbeat while the training process ran.
    assert len(hb.gaps) >= 50, "the run was too short to measure responsiveness"
    assert max(hb.gaps) < 50, f"event loop stalled {max(hb.gaps)} ms during fine-tuning"

    # Live progress reached the panel: one loss point per logged step, the progress bar at the end.
    assert panel.steps_x == [1, 2, 3] and len(panel.loss_y) == 3 and panel.val_y
    assert panel.progress.value() == panel.progress.maximum()

    # The before/after table shows the report's numbers for both weights.
    report = json.loads((run.out_dir / "report.json").read_text())
    assert report["before"] and report["after"] and report["val_images"]
    for key in ("before", "after"):
        assert panel.cell(key, "noc90") == f"{report[key]['noc90']:.2f}"
        assert panel.cell(key, "iou_at_1") == f"{report[key]['iou_at_1']:.3f}"
    assert panel.table.isVisible() and panel.choice.isVisible()
    assert f"{len(report['val_images'])} held-out" in panel.summary.text()

    # The run wrote into its scratch folder only: nothing in the project yet; the base file and the annotations
    # are untouched.
    scratch = run.out_dir / "weights.safetensors"
    assert scratch.is_file() and (run.out_dir / "provenance.json").is_file()
    assert not (Path(project.project_dir) / "finetune").exists()
    assert _sha(assets["base"]) == base_sha
    reopened = Project.open(project.project_dir, read_only=True)
    assert all(np.array_equal(a, b.labels) for a, b in zip(labels_before, reopened.images))
    scratch_sha = _sha(scratch)

    # "Use new weights now" copies the weights and their records into the project, removes the scratch folder
    # and switches the running Segmenter (in the worker thread) to the copy.
    image = assets["scenes"][0].image
    clicks = [(40, 50, True)]
    old = seg.predict(image, clicks)
    label_before = win.status_device.text()
    with qtbot.waitSignal(win.weights_changed, timeout=20000) as changed:
        qtbot.mouseClick(panel.use_btn, Qt.LeftButton)
    [kept] = (Path(project.project_dir) / "finetune").glob("*/weights.safetensors")
    new = kept
    assert _sha(kept) == scratch_sha and (kept.parent / "provenance.json").is_file()
    assert not run.out_dir.exists()
    assert changed.args == [str(new)] and win.weights_path == str(new)
    assert win.worker.worker._segmenter is seg and seg.info["steps"] == 3
    assert "weights.safetensors" in win.status_device.text() and win.status_device.text() != label_before
    assert "new weights" in panel.decision.text()
    after = seg.predict(image, clicks)
    assert after.score != old.score or not np.array_equal(after.mask, old.mask)
    # The next fine-tune starts from the weights in use now.
    win.action_finetune.trigger()
    assert win.finetune_dialog.base.text() == str(new)
    win.finetune_dialog.reject()


def test_cancel_stops_the_run_and_keeps_its_weights(qtbot, assets):
    project = labelled_project(assets, "proj_cancel")
    win, seg = make_window(qtbot, project, assets["base"])
    steps = 200
    run = start_from_menu(qtbot, win, assets["base"], steps=steps)
    panel = win.finetune_panel
    qtbot.waitUntil(lambda: bool(panel.steps_x) or not run.running, timeout=RUN_TIMEOUT_MS)  # training is on
    assert run.running, run.output_tail()
    with qtbot.waitSignal(win.finetune_finished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(panel.cancel_btn, Qt.LeftButton)
        assert (run.out_dir / "STOP").exists() and panel.state == "cancelling"
    assert finished.args == ["cancelled"]
    assert panel.state == "cancelled" and "cancelled" in panel.title.text().lower()
    assert not run.running and not panel.cancel_btn.isEnabled()
    report = json.loads((run.out_dir / "report.json").read_text())
    assert report["stopped"] and panel.steps_x[-1] <= report["steps_done"] < steps
    assert report["after"] is None and not panel.table.isVisible()  # no measurement after a cancel
    kept = Segmenter.from_pretrained(run.out_dir / "weights.safetensors", device="cpu")
    assert kept.info["steps"] == report["steps_done"]  # the weights reached so far can still be used
    assert win.weights_path == str(assets["base"])  # nothing switched without asking
    # Seen in the window: every run, a cancelled one too, left 48 MB in the project folder. The run wrote only
    # into its scratch folder, and "Keep current weights" removes that.
    assert not (Path(project.project_dir) / "finetune").exists()
    qtbot.mouseClick(panel.keep_btn, Qt.LeftButton)
    assert not run.out_dir.exists() and not (Path(project.project_dir) / "finetune").exists()


def test_failed_run_shows_the_error_and_leaves_annotations(qtbot, assets):
    project = labelled_project(assets, "proj_fail")
    pj = Path(project.project_dir) / "project.json"
    bad = assets["root"] / "corrupt.safetensors"
    bad.write_bytes(b"this is not a weights file")
    win, seg = make_window(qtbot, project, assets["base"])
    win.weights_path = str(bad)  # as if a broken file were the weights in use
    before = pj.read_bytes()
    start_from_menu(qtbot, win, bad, steps=3)
    panel = win.finetune_panel
    with qtbot.waitSignal(win.finetune_finished, timeout=RUN_TIMEOUT_MS) as finished:
        pass
    assert finished.args == ["failed"] and panel.state == "failed"
    assert panel.error.isVisible() and "corrupt.safetensors" in panel.error.toPlainText()
    assert "annotations are unchanged" in panel.title.text()
    assert any("Fine-tuning failed" in m for m in win.messages)
    assert pj.read_bytes() == before and not panel.choice.isVisible()
    assert len(Project.open(project.project_dir, read_only=True).images[0].segments) == len(project.images[0].segments) > 0


def test_load_weights_menu_switches_and_reports_bad_files(qtbot, assets, monkeypatch, tmp_path):
    from PyQt5.QtWidgets import QFileDialog

    project = labelled_project(assets, "proj_load")
    win, seg = make_window(qtbot, project, assets["base"])
    image = assets["scenes"][0].image
    old = seg.predict(image, [(40, 50, True)])

    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(assets["base"].read_bytes()[:1000])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(bad), "")))
    with qtbot.waitSignal(win.weights_error, timeout=10000) as err:
        win.action_load_weights.trigger()
    assert "truncated.safetensors" in err.args[0] and "corrupt" in err.args[0]
    assert win.banner.isVisible() and "truncated.safetensors" in win.banner.text()
    assert win.weights_path == str(assets["base"])  # the old weights stay in use
    same = seg.predict(image, [(40, 50, True)])
    assert same.score == old.score and np.array_equal(same.mask, old.mask)

    torch.manual_seed(9)
    other = tmp_path / "other.safetensors"
    save_weights(PointerSegNet(pretrained_backbone=False), other, {"steps": 7})
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(other), "")))
    # Loading converts the net for the CPU runtime in the worker thread: seconds alone, longer beside a
    # training run on a 2-core machine, so the wait is generous (it checks the outcome, not the speed).
    with qtbot.waitSignal(win.weights_changed, timeout=60000):
        win.action_load_weights.trigger()
    assert win.weights_path == str(other) and "other.safetensors" in win.status_device.text()
    assert seg.info["steps"] == 7
    new = seg.predict(image, [(40, 50, True)])
    assert new.score != old.score or not np.array_equal(new.mask, old.mask)


def test_overlay_with_24bit_coco_ids_is_exact_and_small():
    from annotator._qt.canvas import compose_overlay

    labels = np.zeros((64, 80), np.int32)
    labels[8:30, 10:40] = 16_000_000
    labels[35:60, 50:75] = 3
    labels[40:50, 5:15] = 12_345_678  # an id with no segment entry: left transparent, as before
    colors = {16_000_000: (10, 200, 30), 3: (200, 40, 40)}
    tracemalloc.start()
    rgba = compose_overlay(labels, colors, 0.5, show_unlabelled=True, outlines=True, selected=[16_000_000])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2_000_000, f"{peak} bytes allocated for a 64x80 overlay"  # not a 16-million-row table
    assert tuple(rgba[20, 25]) == (10, 200, 30, 128)  # interior of the big-id segment
    assert tuple(rgba[45, 60]) == (200, 40, 40, 128)
    assert tuple(rgba[8, 25]) == (255, 255, 255, 255)  # the selected segment's white contour
    assert tuple(rgba[35, 60]) == (200, 40, 40, 255)  # outline of the other one, opaque in its colour
    assert rgba[45, 10, 3] == 0
    assert tuple(rgba[2, 2, :3]) in {(255, 255, 255), (0, 0, 0)} and rgba[2, 2, 3] in (80, 30)  # hatch
    # Same picture as with small ids (the direct colour table).
    small = np.where(labels == 16_000_000, 7, np.where(labels == 12_345_678, 9, labels)).astype(np.int32)
    ref = compose_overlay(small, {7: (10, 200, 30), 3: (200, 40, 40)}, 0.5, True, True, [7])
    assert np.array_equal(rgba, ref)


def test_replay_folder_in_the_dialog(qtbot, assets, tmp_path):
    """The options dialog takes an optional folder of old data to replay; a wrong one is refused with a reason."""
    project = labelled_project(assets, "proj_replay")
    win, _ = make_window(qtbot, project, assets["base"])
    win.action_finetune.trigger()
    dlg = win.finetune_dialog
    ok = dlg.buttons.button(QDialogButtonBox.Ok)
    dlg.replay.setText(str(tmp_path / "nowhere"))
    ok.click()
    assert dlg.isVisible() and dlg.error.isVisible() and "nowhere" in dlg.error.text()
    photos = tmp_path / "photos"
    (photos / "images").mkdir(parents=True)
    (photos / "masks").mkdir()
    dlg.replay.setText(str(photos))
    assert dlg.options()["replay"] == [str(photos)]
    dlg.replay.setText("")
    assert dlg.options()["replay"] == [] and dlg.options()["train_bn"] is False
    dlg.train_bn.setChecked(True)
    from train.finetune import build_command
    assert "--train-bn" in build_command(project.project_dir, tmp_path / "out", **dlg.options())
    dlg.reject()


def test_too_few_labelled_images_are_refused_before_any_process_starts(qtbot, assets):
    """Seen in the window under Xvfb: with one labelled image, Start launched a training process that failed 4 s
    later ("needs at least 2 labelled images ... found 1 Details are in ..."). The menu says so at once."""
    project = Project.new(assets["images"], assets["root"] / "proj_one")
    project.add_segment(0, assets["scenes"][int(Path(project.images[0].path).stem[len("scene"):])].segments[0], 1)
    win, _ = make_window(qtbot, project, assets["base"])
    win.action_finetune.trigger()
    assert win.finetune_dialog is None and win.finetune_run is None
    assert "at least 2 labelled images" in win.messages[-1] and "has 1" in win.messages[-1], win.messages[-1]


def test_a_failed_run_message_reads_as_sentences(qtbot, assets):
    project = labelled_project(assets, "proj_msg")
    win, _ = make_window(qtbot, project, assets["base"])
    win._on_finetune_finished("failed", None, "the base weights are not a pointer-seg net\nTraceback ...")
    assert "pointer-seg net. Details are in" in win.messages[-1].replace("\n", " "), win.messages[-1]


def test_too_few_held_out_objects_are_called_inconclusive_in_the_panel(qtbot):
    """Seen in the window: with 1 held-out image the result showed a green "IoU@1 0.959 -> 1.000" and no word that
    this means nothing. The panel says the sample is too small and colours no change as better or worse."""
    from PyQt5.QtCore import QObject, pyqtSignal

    from annotator._qt.finetune_panel import TABLE_COLS, TABLE_ROWS, FinetunePanel
    from train.finetune import MIN_EVAL_OBJECTS

    class FakeRun(QObject):
        polled = pyqtSignal(list)
        finished = pyqtSignal(str, object, str)

        def __init__(self) -> None:
            super().__init__()
            self.options, self.out_dir, self.started_at, self.running = {"steps": 10}, Path("run"), None, False

    def report(objects: int) -> dict:
        return {"weights": str(Path(__file__)), "steps_done": 10, "train_s": 1, "wall_s": 2, "val_images": ["x"],
                "train_images": ["y"], "eval_objects": objects, "min_eval_objects": MIN_EVAL_OBJECTS,
                "before": {c[0]: 0.959 for c in TABLE_COLS}, "after": {c[0]: 1.0 for c in TABLE_COLS}}

    panel = FinetunePanel()
    qtbot.addWidget(panel)
    for objects, inconclusive in ((1, True), (MIN_EVAL_OBJECTS, False)):
        run = FakeRun()
        panel.attach(run)
        run.finished.emit("done", report(objects), "")
        assert ("too few to tell" in panel.summary.text()) == inconclusive, panel.summary.text()
        r = [k for k, _ in TABLE_ROWS].index("after")
        c = [k for k, _, _ in TABLE_COLS].index("iou_at_1")
        colour = panel.table.item(c, r).foreground().color()
        assert (colour.green() > 150 and colour.red() < 100) != inconclusive, colour.name()
