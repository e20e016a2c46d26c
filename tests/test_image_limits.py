"""Bounded memory on any image: sizes are read from the header, images above MAX_PIXELS are refused
before decoding, and a batch run goes on past them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bad_inputs import _rgb, huge_png, image_corpus
from train.readers import MAX_PIXELS, image_size, read_image_rgb
from train.sample import DataError

ROOT = Path(__file__).resolve().parent.parent


def test_header_sizes_match_the_decoded_images(tmp_path):
    cases = image_corpus(tmp_path / "c", include_bomb=False)
    checked = 0
    for kind, (path, readable) in cases.items():
        if not readable or kind in ("exif_rotated_jpeg",):  # EXIF rotation swaps the decoded sides
            continue
        size = image_size(path)
        img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
        if size is None:
            continue
        assert size == (img.shape[1], img.shape[0]), kind
        checked += 1
    assert checked >= 12  # PNG (8/16 bit, grey, RGBA, palette), JPEG (RGB, CMYK), GIF, TIFF, WebP, BMP


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_header_size_of_a_wide_image_in_every_format(tmp_path, suffix):
    img = np.zeros((7, 3001, 3), np.uint8)
    path = tmp_path / f"wide{suffix}"
    assert cv2.imwrite(str(path), img)
    assert image_size(path) == (3001, 7)


def test_the_bomb_is_refused_from_its_header_quickly_and_by_name(tmp_path):
    bomb = tmp_path / "scan.png"
    huge_png(bomb)
    assert image_size(bomb) == (30000, 30000)
    t = time.perf_counter()
    with pytest.raises(DataError) as err:
        read_image_rgb(bomb)
    assert time.perf_counter() - t < 1.0  # nothing was decoded
    assert "scan.png" in str(err.value) and "30000x30000" in str(err.value) and "limit" in str(err.value)


def test_a_camera_photo_is_below_the_limit():
    assert 6000 * 4000 < MAX_PIXELS  # 24 MP, a large camera's photo


def test_opencv_backstop_limit_equals_max_pixels():
    text = (ROOT / "main.py").read_text()
    assert f'"OPENCV_IO_MAX_IMAGE_PIXELS", "{MAX_PIXELS}"' in text


def test_app_refuses_the_bomb_with_a_message(tmp_path):
    from annotator._qt.main_window import open_project_for
    from annotator.document import ProjectError

    bomb = tmp_path / "scan.png"
    huge_png(bomb)
    with pytest.raises(ProjectError) as err:
        open_project_for(str(bomb))
    assert "scan.png" in str(err.value) and "MP" in str(err.value)
    assert not (tmp_path / "scan.annot").exists()  # no project folder left behind for it


def test_auto_on_a_folder_with_a_bomb_and_a_truncated_jpeg_goes_on_with_bounded_memory(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"good{i}.png"), cv2.cvtColor(_rgb(i, 64, 80), cv2.COLOR_RGB2BGR))
    huge_png(images / "bomb.png")
    ok, jpg = cv2.imencode(".jpg", _rgb(5, 64, 80))
    (images / "cut.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 3])
    out = tmp_path / "out"
    # The wrapper reports the peak RSS of main.py auto (its only child) in kilobytes.
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    run = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "main.py", "auto", str(images), "--out",
                          str(out), "--random-init"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    peak_kb = int(run.stdout.split("PEAK_KB")[1].split()[0])
    assert peak_kb < 2 * 1024 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    data = json.loads((out / "panoptic.json").read_text())
    assert sorted(im["file_name"] for im in data["images"]) == ["good0.png", "good1.png"]
    skipped = {s["file_name"]: s["reason"] for s in data["skipped"]}
    assert set(skipped) == {"bomb.png", "cut.jpg"}
    assert "30000x30000" in skipped["bomb.png"]
    assert "not a readable image" in skipped["cut.jpg"]
    assert "Traceback" not in run.stderr
    assert run.stderr.count("MP limit") == 1  # each skip said once (it was printed twice)
