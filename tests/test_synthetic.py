"""Synthetic scene generator: exact, disjoint, reproducible ground truth, fast enough to train on the fly."""
from __future__ import annotations

import time

import numpy as np
import pytest

import train.synthetic as syn
from train.synthetic import BLOB, ELLIPSE, POLYGON, STUFF, SyntheticScenes, make_scene


def test_segments_disjoint_nonempty_and_cover_image() -> None:
    d = SyntheticScenes(30, size=(96, 128), seed=3)
    assert len(d) == 30
    for i in range(len(d)):
        s = d[i]
        assert s.image.shape == (96, 128, 3) and s.image.dtype == np.uint8
        assert s.ignore.shape == (96, 128) and s.ignore.dtype == bool
        assert len(s.segments) == len(s.category_ids) >= 1
        count = np.zeros((96, 128), np.int32)
        for m in s.segments:
            assert m.dtype == bool and m.shape == (96, 128)
            assert m.sum() >= 16  # no empty or unclickable crumbs
            count += m
        assert count.max() == 1  # disjoint
        # Every pixel is in exactly one segment or ignored, never both.
        np.testing.assert_array_equal(count == 0, s.ignore)
        assert s.ignore.mean() < 0.05


def test_deterministic_per_index_and_seed() -> None:
    a, b = SyntheticScenes(5, seed=7), SyntheticScenes(5, seed=7)
    later_first = b[4]  # order of access must not matter
    for i in (0, 4):
        x, y = a[i], (b[i] if i != 4 else later_first)
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.label_map(), y.label_map())
    assert not np.array_equal(a[0].image, a[1].image)
    assert not np.array_equal(a[0].image, SyntheticScenes(5, seed=8)[0].image)
    with pytest.raises(IndexError):
        a[5]


def test_masks_match_painted_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one flat colour per painted texture and no noise, each segment is exactly one colour region."""
    calls = []

    def flat(rng, g, box):  # same signature as the real texture; unique colour per call
        k = len(calls) + 1
        calls.append(k)
        h = box[0].stop - box[0].start
        w = box[1].stop - box[1].start
        return np.broadcast_to(np.array([k * 37 % 256, k * 91 % 256, k], np.float32), (h, w, 3))

    monkeypatch.setattr(syn, "_texture", flat)
    for seed in range(10):
        calls.clear()
        image, labels, cats = make_scene(np.random.default_rng(seed), (80, 100), noise=False)
        code = image[:, :, 0].astype(np.int64) * 65536 + image[:, :, 1].astype(np.int64) * 256 + image[:, :, 2]
        colours = []
        for k in range(len(cats)):
            vals = np.unique(code[labels == k])
            assert len(vals) == 1, f"segment {k} of scene {seed} shows {len(vals)} colours"
            colours.append(vals[0])
        assert len(set(colours)) == len(colours)  # each segment is a separately painted region


def test_variety_of_shapes_and_stuff() -> None:
    d = SyntheticScenes(40, seed=0)
    cats = [d[i].category_ids for i in range(len(d))]
    flat = {c for cs in cats for c in cs}
    assert {ELLIPSE, POLYGON, BLOB, STUFF} <= flat
    n_stuff = {cs.count(STUFF) for cs in cats}
    assert {1, 2, 3} <= n_stuff  # backgrounds split into 1-3 stuff segments
    assert max(len(cs) for cs in cats) >= 6


def test_fast_enough() -> None:
    d = SyntheticScenes(20, size=(256, 256), seed=1)
    d[0]
    t = time.perf_counter()
    for i in range(len(d)):
        d[i]
    per_scene = (time.perf_counter() - t) / len(d)
    # Target is < 20 ms; the bound is loose because tests share the CPU with training jobs.
    assert per_scene < 0.06, f"{per_scene * 1000:.1f} ms per scene"
