"""Crash safety of the real app: accept a segment in a subprocess, SIGKILL it at once, reopen the project."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from annotator.document import Project

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

# Runs annotator.app.main on the project with the fake segmenter and drives the window like a user: a mouse
# click on the canvas, wait for the proposal, press Enter, then report (the parent kills us right after).
SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from PyQt5.QtCore import Qt, QTimer
    from PyQt5.QtTest import QTest
    from test_gui import FakeSegmenter
    from annotator.app import main

    def ready(win):
        def do_click():
            win.canvas.fit()
            QTest.mouseClick(win.canvas.viewport(), Qt.LeftButton, Qt.NoModifier, win.canvas.image_to_widget(40, 50))
            poll.start(20)

        def check():
            if win.proposal is not None and win.pending is None:
                poll.stop()
                QTest.keyClick(win, Qt.Key_Return)
                print("ACCEPTED", len(win.project.images[0].segments), int(win.project.images[0].labels[50, 40]),
                      flush=True)

        poll = QTimer(win)
        poll.timeout.connect(check)
        QTimer.singleShot(300, do_click)

    sys.exit(main([{project!r}], segmenter=FakeSegmenter(), on_ready=ready))
    """
)


def test_segment_survives_sigkill_right_after_accept(tmp_path):
    import cv2

    img_dir = tmp_path / "images"
    img_dir.mkdir()
    rgb = np.random.RandomState(0).randint(0, 255, (96, 128, 3), np.uint8)
    cv2.imwrite(str(img_dir / "a.png"), rgb)
    project = Project.new(img_dir, tmp_path / "proj")
    project.close()  # one writer per project: the app in the child takes the lock

    script = SCRIPT.format(tests=str(TESTS), project=str(tmp_path / "proj"))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=str(tmp_path), text=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ACCEPTED") or not line:
                break
        if not line.startswith("ACCEPTED"):
            proc.kill()
            pytest.fail(f"the app did not accept a segment; stderr:\n{proc.stderr.read()[-3000:]}")
        os.kill(proc.pid, signal.SIGKILL)  # no chance to save on exit
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    _, n_segments, sid = line.split()
    assert int(n_segments) == 1 and int(sid) > 0

    reopened = Project.open(tmp_path / "proj")
    entry = reopened.images[0]
    assert set(entry.segments) == {int(sid)}
    labels = entry.labels
    assert labels[50, 40] == int(sid)
    yy, xx = np.mgrid[0:96, 0:128]
    from test_gui import RADIUS

    expected = (xx - 40) ** 2 + (yy - 50) ** 2 <= RADIUS**2  # what the fake proposed for that click
    assert np.array_equal(labels == int(sid), expected)
