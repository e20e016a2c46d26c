"""One writer per project: a second process cannot silently overwrite the first one's work.

Each test puts the other writer in a real child process: within one process the lock is shared on purpose.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from annotator.document import Project, ProjectLockedError, ReadOnlyProjectError
from annotator.project_lock import read_holder
from test_gui import make_image

ROOT = Path(__file__).resolve().parent.parent

# Opens the project for editing, accepts one segment on image ``IDX``, says "holding", then keeps the project
# open until its stdin closes (or it is killed).
HOLDER = textwrap.dedent("""
    import sys
    import numpy as np
    from annotator.document import Project
    p = Project.open(sys.argv[1])
    idx = int(sys.argv[2])
    e = p.images[idx]
    m = np.zeros((e.height, e.width), bool); m[10:30, 10:30] = True
    p.add_segment(idx, m, 1)
    print("holding", flush=True)
    sys.stdin.read()
    p.close()
    print("closed", flush=True)
""")


def start_holder(project_dir: Path, image_index: int = 1) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(project_dir), str(image_index)], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = child.stdout.readline()
    assert line.strip() == "holding", f"the holder did not start: {line!r}"
    return child


def stop_holder(child: subprocess.Popen) -> None:
    child.stdin.close()
    assert child.stdout.readline().strip() == "closed"
    assert child.wait(timeout=20) == 0


@pytest.fixture
def project_dir(tmp_path):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    make_image(img_dir / "a.png", seed=0)
    make_image(img_dir / "b.png", seed=1)
    Project.new(img_dir, tmp_path / "proj").close()
    return tmp_path / "proj"


def square(entry, y0=40, x0=40):
    m = np.zeros((entry.height, entry.width), bool)
    m[y0:y0 + 20, x0:x0 + 20] = True
    return m


def test_second_writer_is_refused_and_names_the_holder_and_the_first_ones_work_survives(project_dir):
    child = start_holder(project_dir, image_index=1)
    try:
        with pytest.raises(ProjectLockedError) as err:
            Project.open(project_dir)
        assert f"PID {child.pid}" in str(err.value)
        # the second window's way: open read-only, say why, refuse edits, write nothing
        viewer = Project.open(project_dir, fallback_read_only=True)
        assert viewer.read_only and f"PID {child.pid}" in viewer.read_only_reason
        assert any("READ-ONLY" in w for w in viewer.warnings)
        before = (project_dir / "project.json").read_bytes()
        with pytest.raises(ReadOnlyProjectError):
            viewer.add_segment(0, square(viewer.images[0]), 1)
        with pytest.raises(ReadOnlyProjectError):
            viewer.add_category("tree")
        viewer.save()  # a no-op: nothing of its own to write
        assert (project_dir / "project.json").read_bytes() == before
        assert viewer.images[0].segments == {}
    finally:
        stop_holder(child)
    # the holder's accepted segment is on disk, and now the folder is free for the next writer
    proj = Project.open(project_dir)
    assert len(proj.images[1].segments) == 1 and proj.images[0].segments == {}
    proj.add_segment(0, square(proj.images[0]), 1)
    proj.close()
    again = Project.open(project_dir, read_only=True)
    assert len(again.images[0].segments) == 1 and len(again.images[1].segments) == 1


def test_a_lock_left_by_a_killed_process_is_taken_over(project_dir):
    child = start_holder(project_dir)
    assert read_holder(project_dir).get("pid") == child.pid
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=20)
    proj = Project.open(project_dir)  # the kernel dropped the dead holder's lock: no error, no waiting
    assert read_holder(project_dir).get("pid") == os.getpid()
    assert len(proj.images[1].segments) == 1  # what the killed process had saved is there
    proj.close()
    assert read_holder(project_dir) == {}  # a clean release removes the record


def test_new_project_in_a_folder_another_process_holds_is_refused(project_dir, tmp_path):
    child = start_holder(project_dir)
    try:
        with pytest.raises(Exception) as err:  # a project exists there: ProjectError either way, never overwritten
            Project.new(tmp_path / "images", project_dir)
        assert "project" in str(err.value)
    finally:
        stop_holder(child)
    assert len(Project.open(project_dir, read_only=True).images[1].segments) == 1


def test_batch_run_into_a_held_folder_exits_with_the_holder_named(project_dir, tmp_path):
    child = start_holder(project_dir)
    try:
        run = subprocess.run([sys.executable, "main.py", "auto", str(tmp_path / "images"), "--out",
                              str(project_dir), "--random-init"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 2, run.stderr
        assert f"PID {child.pid}" in run.stderr and "Traceback" not in run.stderr
        assert not (project_dir / "panoptic.json").exists()
    finally:
        stop_holder(child)


def test_finetune_reads_a_project_someone_is_editing(project_dir, tmp_path):
    from annotator.finetune_job import ProjectExport
    from train.finetune import prepare_data

    proj = Project.open(project_dir)
    proj.add_segment(0, square(proj.images[0]), 1)
    proj.close()
    child = start_holder(project_dir)
    try:
        info = prepare_data(ProjectExport(project_dir), tmp_path / "data")  # neither blocks nor is blocked
        assert read_holder(project_dir).get("pid") == child.pid  # the editor still holds its lock
    finally:
        stop_holder(child)
    assert sorted(info["train"] + info["val"]) == ["a.png", "b.png"]  # both labelled images, the holder's too


def test_app_opens_a_held_project_read_only_and_refuses_edits(qtbot, project_dir):
    from PyQt5.QtCore import Qt

    from annotator._qt.main_window import open_project_for
    from test_gui import click, make_window, wait_proposal

    child = start_holder(project_dir)
    try:
        proj = open_project_for(str(project_dir))
        win = make_window(qtbot, proj)
        assert "(read-only)" in win.windowTitle()
        # said where the person looks, and still said after a successful prediction (which clears banners)
        assert win.read_only_label.isVisible() and f"PID {child.pid}" in win.read_only_label.text()
        click(qtbot, win, 40, 50)
        wait_proposal(qtbot, win)
        qtbot.keyClick(win, Qt.Key_Return)
        assert "Read-only project" in win.statusBar().currentMessage()
        assert proj.images[0].segments == {}
        assert win.read_only_label.isVisible()
        win.close()
    finally:
        stop_holder(child)
    data = json.loads((project_dir / "project.json").read_text())
    assert data  # still a valid project after the read-only window closed
    assert len(Project.open(project_dir, read_only=True).images[1].segments) == 1
