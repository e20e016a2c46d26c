"""Nothing lost whatever the fault: a short kill soak, its self-test, and a full disk."""
from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from annotator import document
from annotator.document import Project

ROOT = Path(__file__).resolve().parent.parent


def _soak():
    spec = importlib.util.spec_from_file_location("kill_soak", ROOT / "bench" / "kill_soak.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_thirty_kills_lose_no_saved_edit(tmp_path):
    soak = _soak()
    project_dir = soak.make_project(tmp_path)
    counts = soak.run_soak(project_dir, kills=30, seed=1)
    assert counts["failures"] == []
    assert counts["kills"] == 30 and counts["fault_kills"] >= 5 and counts["timer_kills"] >= 5
    assert counts["reopen_failures"] == counts["edits_lost"] == counts["mixed_states"] == 0
    assert counts["child_errors"] == 0
    assert counts["saves_acknowledged"] > 100  # real edits were made and checked
    final = Project.open(project_dir)
    assert any(e.segments for e in final.images)


def test_a_hung_child_is_killed_and_reported_not_waited_for(tmp_path, monkeypatch):
    """A child that never finishes (in the full suite one hung in an OpenVINO destructor inherited through
    fork) must fail the soak with a message, not hang the test run."""
    import time

    soak = _soak()
    project_dir = soak.make_project(tmp_path)
    monkeypatch.setattr(soak, "_child", lambda *args: time.sleep(600))
    t0 = time.monotonic()
    counts = soak.run_soak(project_dir, kills=1, seed=1, fault_fraction=1.0, child_timeout_s=2.0)
    assert time.monotonic() - t0 < 60
    assert counts["child_errors"] == 1
    assert any("hung" in f for f in counts["failures"])


def test_the_soak_finds_damage_when_writes_are_not_atomic(tmp_path):
    """Its self-test: with plain open().write() instead of the atomic write, kills inside a save must show."""
    soak = _soak()
    project_dir = soak.make_project(tmp_path)
    counts = soak.run_soak(project_dir, kills=60, seed=2, fault_fraction=1.0, unsafe_writes=True)
    assert counts["reopen_failures"] + counts["edits_lost"] + counts["mixed_states"] > 0


# ------------------------------------------------------------------------------------------------ full disk
def _square(entry, y0=10, x0=10, side=20):
    m = np.zeros((entry.height, entry.width), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


def _no_space(monkeypatch, after_bytes: int = 0):
    """Writes of the save path fail with ENOSPC once ``after_bytes`` were written (a disk that fills up)."""
    real_fdopen = os.fdopen
    budget = [after_bytes]

    class _Full:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            if len(data) > budget[0]:
                self._f.write(data[: budget[0]])
                budget[0] = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget[0] -= len(data)
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    monkeypatch.setattr(document.os, "fdopen", lambda fd, *a, **kw: _Full(real_fdopen(fd, *a, **kw)))


@pytest.fixture
def proj(tmp_path):
    soak = _soak()
    project_dir = soak.make_project(tmp_path)
    p = Project.open(project_dir)
    p.add_segment(0, _square(p.images[0]), 1)
    yield p
    p.close()


@pytest.mark.parametrize("after_bytes", [0, 300])  # no space at all; space for the label map only
def test_full_disk_keeps_the_saved_state_and_the_edit_in_memory(proj, tmp_path, monkeypatch, after_bytes):
    from annotator.coco_io import export_coco_panoptic

    soak = _soak()
    saved = soak.state_digest(proj)
    on_disk = {p.name: p.read_bytes() for p in proj.project_dir.rglob("*") if p.is_file()}
    _no_space(monkeypatch, after_bytes)
    with pytest.raises(OSError) as err:
        proj.add_segment(1, _square(proj.images[1]), 1)
    assert err.value.errno == errno.ENOSPC and "No space left" in str(err.value)
    # the last saved state is intact on disk, byte for byte, with no temp files left
    now = {p.name: p.read_bytes() for p in proj.project_dir.rglob("*") if p.is_file()}
    assert now == on_disk
    reopened = Project.open(proj.project_dir, read_only=True)
    assert soak.state_digest(reopened) == saved
    # the edit stays in memory, and the person can save it elsewhere (an export to another disk)
    assert len(proj.images[1].segments) == 1
    monkeypatch.undo()
    out = export_coco_panoptic(proj, tmp_path / "elsewhere")
    from train.coco_panoptic import CocoPanopticReader

    reader = CocoPanopticReader(out)
    assert sum(len(a["segments_info"]) for a in reader.annotations) == 2
    # once there is space again, the next save writes it
    proj.save()
    assert len(Project.open(proj.project_dir, read_only=True).images[1].segments) == 1


def test_full_disk_in_the_app_says_so_and_keeps_the_edit(qtbot, proj, monkeypatch):
    from PyQt5.QtCore import Qt

    from test_gui import click, make_window, wait_proposal

    win = make_window(qtbot, proj)
    win.show_image(1)
    _no_space(monkeypatch)
    click(qtbot, win, 40, 30)
    wait_proposal(qtbot, win)
    qtbot.keyClick(win, Qt.Key_Return)
    assert win.banner.isVisible()
    text = win.banner.text()
    assert "No space left on device" in text and "kept in memory" in text
    assert len(proj.images[1].segments) == 1
    assert len(Project.open(proj.project_dir, read_only=True).images[1].segments) == 0
    monkeypatch.undo()
    qtbot.keyClick(win, Qt.Key_S, Qt.ControlModifier)
    assert len(Project.open(proj.project_dir, read_only=True).images[1].segments) == 1


def test_a_real_full_tmpfs(tmp_path):
    """The same on a real 256 KiB tmpfs (needs permission to mount: skipped where there is none)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        soak = _soak()
        rng = np.random.default_rng(0)
        import cv2

        images = tmp_path / "images"  # the images live elsewhere; the project on the small disk
        images.mkdir()
        for i in range(3):
            cv2.imwrite(str(images / f"im{i}.png"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        p = Project.new(images, mnt / "project")
        p.add_segment(0, rng.random((240, 320)) < 0.5, 1)
        saved = soak.state_digest(p)
        # fill the disk but for 8 KiB: the next noisy label map (tens of KiB) does not fit
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - 8192))
        with pytest.raises(OSError) as err:
            p.add_segment(1, rng.random((240, 320)) < 0.5, 1)
        assert err.value.errno == errno.ENOSPC
        in_memory = soak.state_digest(p)
        assert in_memory != saved  # the failed edit is kept in memory
        reopened = Project.open(mnt / "project", read_only=True)
        assert soak.state_digest(reopened) == saved  # the last saved state is intact
        assert not list((mnt / "project").rglob("*.tmp"))  # no half-written temp file left taking space
        with pytest.raises(OSError):  # closing retries the save, which fails again, and still lets go of the lock
            p.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
