"""`--screenshot` with `--demo-click`: the scripted clicks the README's screenshots are made with, a negative one
included, run in the real window (offscreen) and leave a PNG."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_gui import FakeSegmenter
    from annotator.app import main

    fake = FakeSegmenter()
    windows = []
    code = main({argv!r}, segmenter=fake, on_ready=windows.append)
    print("CALLS", fake.calls, flush=True)
    win = windows[0]
    print("OVERVIEW", win.overview, len(win.bulk.get(win.index) or []), fake.steps, flush=True)
    sys.exit(code)
    """
)


def test_demo_clicks_accept_then_correct_with_a_negative_click(tmp_path):
    import cv2

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.random.RandomState(0).randint(0, 255, (96, 128, 3), np.uint8))
    out = tmp_path / "shot.png"
    argv = [str(image), "--project-dir", str(tmp_path / "proj"), "--screenshot", str(out),
            "--demo-click", "20,20", "--demo-click", "60,50", "--demo-click=-64,50"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=str(TESTS), argv=argv)], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and cv2.imread(str(out)) is not None
    calls = next(line for line in proc.stdout.splitlines() if line.startswith("CALLS"))
    # The first click was accepted on its own; the second was corrected by the negative click, not accepted.
    assert "[(20, 20, True)]" in calls and "[(60, 50, True), (64, 50, False)]" in calls


def test_overview_screenshot_shows_every_proposal(tmp_path):
    """`--demo-overview` (the README's second picture): all auto-segment proposals shown at once. The screenshot
    tool also passes a centre click, which in the overview dropped the proposal under it."""
    import cv2

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.random.RandomState(0).randint(0, 255, (96, 128, 3), np.uint8))
    out = tmp_path / "shot.png"
    argv = [str(image), "--project-dir", str(tmp_path / "proj"), "--screenshot", str(out),
            "--demo-click", "center", "--demo-overview"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=str(TESTS), argv=argv)], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and cv2.imread(str(out)) is not None
    overview = next(line for line in proc.stdout.splitlines() if line.startswith("OVERVIEW"))
    shown, proposals, strips = overview.split()[1:]
    assert shown == "True" and int(proposals) == int(strips) > 1
