"""The Segmenter inference API (model.Segmenter): input handling, ROI guarantee, determinism, segment_image,
and loading weight files. Uses untrained nets (Segmenter.random_init), so no trained weights are needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import model.segmenter as segmod
from model import Segmenter, WeightsError
from model.net import PointerSegNet
from model.weights import save_weights
from train.synthetic import SyntheticScenes

# random_init(0) answers "everything" (so a mask == its ROI: the strictest ROI check); random_init(5) answers a
# partial mask that corrections change (so chains and caching are really exercised).
ALL_SEED, PARTIAL_SEED = 0, 5


def make(seed: int, **options) -> Segmenter:
    """A small internal resolution keeps the tests fast on a busy CPU; the API is the same at any size."""
    return Segmenter.random_init(seed, max_side=160, full_image_side=96, **options)


# The optional inference modes (mirrored-pass averaging, first-click refinement) keep every guarantee.
OPTIONS = [{}, {"local_corrections": True}, {"flip_average": True}, {"refine_first": "prev"},
           {"refine_first": "off"}, {"refine_first": "fresh"}, {"zoom_min_fraction": 0.1, "refine_first": "prev"},
           {"guided_radius": 0}, {"threshold": 0.4}]


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return make(ALL_SEED)


@pytest.fixture(scope="module")
def seg_partial() -> Segmenter:
    return make(PARTIAL_SEED)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return SyntheticScenes(1, size=(120, 160), seed=1)[0].image


# ---- shapes and input conversion ----

@pytest.mark.parametrize("shape", [(1, 37), (41, 1), (5, 5), (33, 70)])
def test_mask_shape_and_dtype_for_odd_sizes(seg: Segmenter, shape: tuple[int, int]) -> None:
    h, w = shape
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pred = seg.predict(img, [(w // 2, h // 2, True)])
    assert pred.mask.shape == (h, w) and pred.mask.dtype == bool
    assert isinstance(pred.score, float) and 0.0 <= pred.score <= 1.0


def test_large_image_mask_at_full_resolution() -> None:
    seg = Segmenter.random_init(ALL_SEED)  # the default settings, as the annotator uses them
    img = np.zeros((3000, 4000, 3), np.uint8)
    img[:, 2000:] = 200
    roi = np.zeros((3000, 4000), bool)
    roi[1000:2500, 500:3900] = True
    pred = seg.predict(img, [(3000.0, 1500.0, True)], roi=roi)
    assert pred.mask.shape == (3000, 4000) and pred.mask.dtype == bool
    assert pred.mask.any() and not (pred.mask & ~roi).any()


def test_a_click_on_an_image_above_work_side_matches_the_full_resolution_answer(scene: np.ndarray) -> None:
    """An image larger than work_side is clicked on a scaled copy (a 24 MP photo's resizes shrink tenfold);
    the user gets the same masks as without the copy, at full resolution, inside the full-resolution ROI,
    through a correction chain and for every reading. work_side = max_side / 0.25 here: 640 px."""
    big = np.ascontiguousarray(np.repeat(np.repeat(scene, 8, 0), 8, 1))  # 960 x 1280
    h, w = big.shape[:2]
    roi = np.ones((h, w), bool)
    roi[:, 700:] = False
    roi[200:203, 700:1100] = True  # a 3-px sliver of ROI: a click on it must still land inside the ROI
    scaled, exact = make(PARTIAL_SEED), make(PARTIAL_SEED, work_side=-1)
    assert scaled.work_side == 640
    chain = [(300.0, 400.0, True), (500.0, 700.0, False), (100.0, 150.0, True)]
    for k in (1, 2, 3):
        a, b = scaled.predict(big, chain[:k], roi), exact.predict(big, chain[:k], roi)
        assert a.mask.shape == (h, w) and not (a.mask & ~roi).any()
        inter, union = np.count_nonzero(a.mask & b.mask), np.count_nonzero(a.mask | b.mask)
        assert union and inter / union > 0.95, (k, inter / union)
        assert len(a.readings) >= 1 and all(r.shape == (h, w) and not (r & ~roi).any() for r in a.readings)
    sliver = scaled.predict(big, [(900.0, 201.0, True)], roi)
    assert not (sliver.mask & ~roi).any()
    with pytest.raises(ValueError, match="work_side"):
        make(ALL_SEED, work_side=-2)


def test_greyscale_and_rgba_are_converted(seg_partial: Segmenter, scene: np.ndarray) -> None:
    grey = scene.mean(2).astype(np.uint8)
    as_rgb_pred = seg_partial.predict(np.repeat(grey[..., None], 3, 2), [(80, 60, True)])
    for img in (grey, grey[..., None]):
        pred = seg_partial.predict(img, [(80, 60, True)])
        np.testing.assert_array_equal(pred.mask, as_rgb_pred.mask)
        assert pred.score == as_rgb_pred.score
    rgba = np.concatenate([scene, np.full(scene.shape[:2] + (1,), 7, np.uint8)], 2)
    np.testing.assert_array_equal(seg_partial.predict(rgba, [(80, 60, True)]).mask,
                                  seg_partial.predict(scene, [(80, 60, True)]).mask)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((20, 20, 3), np.float32), "uint8"),
    (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((20, 0), np.uint8), "empty"),
    (np.zeros((20, 20, 2), np.uint8), "shape"),
    (np.zeros((20, 20, 5), np.uint8), "shape"),
    (np.zeros((2, 20, 20, 3), np.uint8), "shape"),
])
def test_bad_images_rejected_with_clear_error(seg: Segmenter, bad: np.ndarray, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        seg.predict(bad, [(0, 0, True)])
    with pytest.raises(ValueError, match=words):
        seg.segment_image(bad)


@pytest.mark.parametrize("click", [(-1, 5), (5, -0.5), (160, 5), (5, 120), (1e9, 1e9)])
def test_click_outside_image_rejected(seg: Segmenter, scene: np.ndarray, click) -> None:
    with pytest.raises(ValueError, match="outside"):
        seg.predict(scene, [(click[0], click[1], True)])
    with pytest.raises(ValueError, match="outside"):  # a later correction click too
        seg.predict(scene, [(10, 10, True), (click[0], click[1], False)])


def test_other_bad_arguments(seg: Segmenter, scene: np.ndarray) -> None:
    with pytest.raises(ValueError, match="click"):
        seg.predict(scene, [])
    with pytest.raises(ValueError, match="positive"):
        seg.predict(scene, [(10, 10, False)])
    with pytest.raises(ValueError, match="roi"):
        seg.predict(scene, [(10, 10, True)], roi=np.ones((10, 10), bool))


# ---- the ROI guarantee ----

@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("seed", [ALL_SEED, PARTIAL_SEED])
def test_mask_never_outside_roi(seed: int, options: dict, scene: np.ndarray) -> None:
    seg = make(seed, **options)
    rng = np.random.default_rng(seed)
    h, w = scene.shape[:2]
    nonempty = 0
    for trial in range(4):
        roi = np.zeros((h, w), bool)
        for _ in range(3):  # a union of random boxes: holes and several parts, like a real unlabelled region
            x0, y0 = rng.integers(0, w - 20), rng.integers(0, h - 20)
            roi[y0:y0 + rng.integers(10, 90), x0:x0 + rng.integers(10, 120)] = True
        roi &= rng.random((h, w)) > 0.02  # scattered labelled pixels inside it
        ys, xs = np.nonzero(roi)
        j = rng.integers(len(xs))
        clicks = [(int(xs[j]), int(ys[j]), True)]
        for _ in range(3):
            clicks.append((int(rng.integers(w)), int(rng.integers(h)), bool(rng.random() < 0.5)))
        for k in range(1, len(clicks) + 1):
            pred = seg.predict(scene, clicks[:k], roi=roi)
            assert not (pred.mask & ~roi).any(), (trial, k)
            nonempty += bool(pred.mask.any())
    assert nonempty > 0  # the check above looked at real masks
    labels = seg.segment_image(scene[:48, :60], roi=roi[:48, :60])
    assert labels.any() or seed != ALL_SEED
    assert not labels[~roi[:48, :60]].any()


def test_first_click_outside_roi_gives_empty_mask(seg: Segmenter, scene: np.ndarray) -> None:
    roi = np.zeros(scene.shape[:2], bool)
    roi[:, 80:] = True
    pred = seg.predict(scene, [(20, 60, True), (100, 60, True)], roi=roi)
    assert pred.mask.shape == roi.shape and not pred.mask.any()
    assert seg.predict(scene, [(100, 60, True)], roi=roi).mask.any()  # the same net inside the ROI finds pixels


def test_roi_change_in_thin_stroke_is_respected(seg: Segmenter) -> None:
    """Labelling a one-pixel-wide segment changes the ROI only slightly; the next answer must still avoid it
    (a cached answer for the old ROI would not)."""
    img = SyntheticScenes(1, size=(512, 512), seed=2)[0].image
    roi = np.ones((512, 512), bool)
    before = seg.predict(img, [(300, 300, True)], roi=roi)
    assert before.mask[:, 101].all()
    roi2 = roi.copy()
    roi2[:, 101] = False
    after = seg.predict(img, [(300, 300, True)], roi=roi2)
    assert not after.mask[:, 101].any()


# ---- determinism and the correction chain ----

def test_deterministic_across_calls_and_instances(scene: np.ndarray) -> None:
    clicks = [(80, 60, True), (20, 100, False), (140, 15, True)]
    roi = np.ones(scene.shape[:2], bool)
    roi[:10] = False
    a = make(PARTIAL_SEED)
    first = a.predict(scene, clicks, roi)
    again = a.predict(scene, clicks, roi)
    fresh = make(PARTIAL_SEED).predict(scene.copy(), list(clicks), roi.copy())
    for p in (again, fresh):
        np.testing.assert_array_equal(p.mask, first.mask)
        assert p.score == first.score
    other = make(PARTIAL_SEED + 1).predict(scene, clicks, roi)
    assert other.score != first.score  # a different net gives a different answer: the comparison can fail


def test_cached_chain_equals_uncached(scene: np.ndarray) -> None:
    clicks = [(80, 60, True), (20, 100, False), (140, 15, True)]
    chained = make(PARTIAL_SEED)
    step_preds = [chained.predict(scene, clicks[:k]) for k in range(1, 4)]
    for k in range(1, 4):
        direct = make(PARTIAL_SEED).predict(scene, clicks[:k])
        np.testing.assert_array_equal(step_preds[k - 1].mask, direct.mask)
        assert step_preds[k - 1].score == direct.score
    # A correction click changes the answer (the chain is not a no-op) ...
    assert not np.array_equal(step_preds[0].mask, step_preds[1].mask)
    # ... and going back to fewer clicks gives the first answer again, not the cached longer chain.
    np.testing.assert_array_equal(chained.predict(scene, clicks[:1]).mask, step_preds[0].mask)


def test_returned_mask_is_a_copy(seg_partial: Segmenter, scene: np.ndarray) -> None:
    p = seg_partial.predict(scene, [(80, 60, True)])
    expected = p.mask.copy()
    p.mask[:] = ~p.mask  # a caller drawing on its mask must not change the next answer
    np.testing.assert_array_equal(seg_partial.predict(scene, [(80, 60, True)]).mask, expected)


def test_new_image_of_same_size_is_not_mistaken_for_the_last(seg_partial: Segmenter) -> None:
    """An image that differs from the last one only in its green and blue channels is a different image."""
    a = SyntheticScenes(1, size=(256, 256), seed=4)[0].image
    b = a.copy()
    b[..., 1:] = 255 - b[..., 1:]
    seg_partial.predict(a, [(128, 128, True)])
    on_b = seg_partial.predict(b, [(128, 128, True)])
    fresh_b = make(PARTIAL_SEED).predict(b, [(128, 128, True)])
    np.testing.assert_array_equal(on_b.mask, fresh_b.mask)
    assert on_b.score == fresh_b.score


# ---- segment_image ----

def test_segment_image_label_map(seg: Segmenter) -> None:
    img = SyntheticScenes(1, size=(48, 60), seed=1)[0].image
    roi = np.ones((48, 60), bool)
    roi[:, :12] = False
    fractions = []
    labels = seg.segment_image(img, roi=roi, progress=lambda f: fractions.append(f))
    assert labels.shape == (48, 60) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() >= 1
    assert not labels[~roi].any()
    assert fractions and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)


def test_segment_image_time_is_bounded_on_fragmented_roi(seg_partial: Segmenter, scene: np.ndarray) -> None:
    """A ROI full of small holes (salt noise) leaves no large interior; misses must not go on for ever."""
    roi = np.random.default_rng(3).random(scene.shape[:2]) > 0.1
    calls: list[float] = []
    labels = seg_partial.segment_image(scene, roi=roi, progress=lambda f: calls.append(f), max_segments=5)
    assert len(calls) <= 3 * 5 + 1  # one call per net run, plus the final 1.0
    assert calls[-1] == 1.0 and not labels[~roi].any()


def test_segment_image_spends_no_net_pass_on_slivers(seg: Segmenter, scene: np.ndarray) -> None:
    """What is left between segments is often 1-2 pixel slivers: no segment worth a net pass fits there."""
    roi = np.zeros(scene.shape[:2], bool)
    roi[::10, :] = True  # 1-pixel lines
    calls: list[float] = []
    labels = seg.segment_image(scene, roi=roi, progress=lambda f: calls.append(f))
    assert calls == [1.0] and not labels.any()  # this net answers "all of the ROI" whenever it runs
    roi[20:80, 30:100] = True  # one real region among the slivers: pointers go there
    calls.clear()
    labels = seg.segment_image(scene, roi=roi, progress=lambda f: calls.append(f))
    assert len(calls) >= 2 and (labels[20:80, 30:100] > 0).mean() > 0.9


@pytest.mark.parametrize("shape", [(1, 90), (90, 1), (5, 5)])
def test_segment_image_odd_sizes(seg: Segmenter, shape: tuple[int, int]) -> None:
    img = np.random.default_rng(1).integers(0, 256, shape + (3,), dtype=np.uint8)
    labels = seg.segment_image(img)
    assert labels.shape == shape and labels.dtype == np.int32 and labels.min() >= 0


def test_segment_image_cancel(seg_partial: Segmenter) -> None:
    img = SyntheticScenes(1, size=(48, 60), seed=1)[0].image
    full_calls: list[float] = []
    full = seg_partial.segment_image(img, progress=lambda f: full_calls.append(f))
    assert len(full_calls) > 3

    calls: list[float] = []

    def cancel_after_two(f: float) -> bool:
        calls.append(f)
        return len(calls) < 2

    part = seg_partial.segment_image(img, progress=cancel_after_two)
    assert len(calls) == 2 < len(full_calls)
    assert part.shape == (48, 60) and part.dtype == np.int32 and part.min() >= 0
    # What was found before cancelling is the start of the full run: the same segments, never more.
    assert part.max() <= full.max()
    for k in range(1, part.max() + 1):
        np.testing.assert_array_equal(part == k, full == k)


# ---- weights files ----

@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(PARTIAL_SEED + 1)
    path = tmp_path_factory.mktemp("w") / "net.safetensors"
    save_weights(PointerSegNet(pretrained_backbone=False), path, {"note": "test"})
    return path


def _bad_files(tmp: Path, good: Path) -> dict[str, Path]:
    from safetensors.torch import save_file
    import torch

    data = good.read_bytes()
    files = {"missing": tmp / "nothing_here.safetensors"}
    files["truncated"] = tmp / "truncated.safetensors"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["garbage"] = tmp / "garbage.safetensors"
    files["garbage"].write_text("this is a text file, not weights\n" * 20)
    files["empty"] = tmp / "empty.safetensors"
    files["empty"].write_bytes(b"")
    files["other_tensors"] = tmp / "other_tensors.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(files["other_tensors"]))
    files["other_tensors_same_arch"] = tmp / "other_tensors_same_arch.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(files["other_tensors_same_arch"]),
              metadata={"arch": "pointer-roi-efficientnet-lite0-v1"})
    files["wrong_shape"] = tmp / "wrong_shape.safetensors"
    save_weights(PointerSegNet(pretrained_backbone=False, decoder_channels=32), files["wrong_shape"])
    return files


def test_bad_weight_files_give_weights_error_naming_the_file(tmp_path: Path, weights_file: Path) -> None:
    seg = make(ALL_SEED)
    img = np.zeros((32, 32, 3), np.uint8)
    before = seg.predict(img, [(5, 5, True)])
    for what, path in _bad_files(tmp_path, weights_file).items():
        with pytest.raises(WeightsError) as exc:
            Segmenter.from_pretrained(path)
        assert str(path) in str(exc.value), what
        assert isinstance(exc.value, ValueError)
        with pytest.raises(WeightsError, match=path.name):
            seg.load_weights(path)
        # A failed swap leaves the running Segmenter as it was.
        after = seg.predict(img, [(5, 5, True)])
        np.testing.assert_array_equal(after.mask, before.mask)
        assert after.score == before.score


def test_no_bundled_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(segmod, "BUNDLED_WEIGHTS", tmp_path / "absent.safetensors")
    with pytest.raises(WeightsError, match="no trained weights"):
        Segmenter.from_pretrained()


def test_bundled_weights_load(monkeypatch: pytest.MonkeyPatch, weights_file: Path, scene: np.ndarray) -> None:
    monkeypatch.setattr(segmod, "BUNDLED_WEIGHTS", weights_file)
    seg = Segmenter.from_pretrained(device="cpu", max_side=160, full_image_side=96)
    assert seg.device == "cpu"
    explicit = Segmenter.from_pretrained(weights_file, device="cpu", max_side=160, full_image_side=96)
    a, b = seg.predict(scene, [(80, 60, True)]), explicit.predict(scene, [(80, 60, True)])
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.score == b.score
    assert a.score != make(ALL_SEED).predict(scene, [(80, 60, True)]).score


def test_load_weights_swaps_the_net(weights_file: Path, scene: np.ndarray) -> None:
    seg = make(PARTIAL_SEED)
    clicks = [(80, 60, True)]
    before = seg.predict(scene, clicks)
    seg.load_weights(weights_file)
    after = seg.predict(scene, clicks)
    loaded = Segmenter.from_pretrained(weights_file, device="cpu", max_side=160, full_image_side=96)
    reference = loaded.predict(scene, clicks)
    assert after.score != before.score
    assert after.score == reference.score
    np.testing.assert_array_equal(after.mask, reference.mask)


@pytest.mark.parametrize("local", [False, True])
def test_every_correction_puts_its_pixel_on_the_clicked_side(local: bool, scene: np.ndarray) -> None:
    """Even where the net ignores a click (an untrained net mostly does), the clicked pixel ends up inside
    the mask after a positive click and outside it after a negative one, and never outside the ROI."""
    seg = make(PARTIAL_SEED, local_corrections=local)
    roi = np.ones(scene.shape[:2], bool)
    roi[:, :30] = False
    first = seg.predict(scene, [(80, 60, True)], roi=roi).mask
    for want in (True, False):
        ys, xs = np.nonzero((first == (not want)) & roi)
        assert len(xs) > 0
        for i in (len(xs) // 5, len(xs) // 2, 4 * len(xs) // 5):
            x, y = int(xs[i]), int(ys[i])
            after = seg.predict(scene, [(80, 60, True), (x, y, want)], roi=roi).mask
            assert after[y, x] == want and not after[~roi].any()


def test_local_corrections_change_only_the_region_under_the_click(scene: np.ndarray) -> None:
    """local_corrections=True: a positive click adds the region under it and removes nothing; a negative click
    removes the region under it and adds nothing; either way the clicked pixel ends up on the clicked side."""
    seg_partial = make(PARTIAL_SEED, local_corrections=True)
    first = seg_partial.predict(scene, [(80, 60, True)]).mask
    ys, xs = np.nonzero(~first)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    added = seg_partial.predict(scene, [(80, 60, True), (x, y, True)]).mask
    assert added[y, x] and not (first & ~added).any()
    ys, xs = np.nonzero(first)
    x, y = int(xs[len(xs) // 3]), int(ys[len(ys) // 3])
    removed = seg_partial.predict(scene, [(80, 60, True), (x, y, False)]).mask
    assert not removed[y, x] and not (removed & ~first).any()
    roi = np.ones(scene.shape[:2], bool)
    roi[:, :40] = False  # and never outside the ROI, also for a positive click near its edge
    chained = seg_partial.predict(scene, [(80, 60, True), (42, 60, True)], roi=roi).mask
    assert chained[60, 42] and not chained[~roi].any()


def _box_mask(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("moved_to", [(2, 14), (0, 8)], ids=["overlapping", "apart"])
def test_a_negative_click_on_a_detached_part_removes_the_whole_part(local: bool, moved_to: tuple) -> None:
    """Seen on a street photo: a click on a car also took the top of a clock tower far away, and each negative
    click on the tower moved that blob up the spire instead of removing it. The net is stubbed to do just that:
    the correction's mask still holds the car and a tower blob moved up (overlapping the old one or not)."""
    shape = (120, 160)
    car = _box_mask(shape, 60, 80, 20, 50)
    tower = _box_mask(shape, 20, 40, 120, 140)
    moved = _box_mask(shape, *moved_to, 120, 140)
    seg = Segmenter.random_init(ALL_SEED, max_side=160, first_click_windows=(), large_object_side=0,
                                refine_first="off", small_object_refine=False, guided_radius=0,
                                local_corrections=local)

    def stub_run(img, roi, clicks, prev, window, side, *keys):
        x0, y0, x1, y1 = window
        answer = (car | tower) if prev is None else (car | moved)
        return answer[y0:y1, x0:x1].astype(np.uint8) * 255, 0.87

    seg._run = stub_run
    image = np.zeros((*shape, 3), np.uint8)
    first = seg.predict(image, [(30, 70, True)]).mask
    assert np.array_equal(first, car | tower)
    after = seg.predict(image, [(30, 70, True), (130, 30, False)]).mask
    assert np.array_equal(after, car), "the tower blob must go whole, the car stay as it was"
    # A negative click on the clicked object itself is an ordinary correction: nothing detached is dropped.
    trimmed = seg.predict(image, [(30, 70, True), (45, 75, False)]).mask
    assert not trimmed[75, 45] and trimmed[70, 30] and (trimmed & (tower | moved)).any()


def test_segment_image_leaves_segments_the_net_rates_poorly_unassigned(seg: Segmenter) -> None:
    """min_score: a segment whose predicted IoU is below it is not proposed; its pixels stay for the person."""
    img = SyntheticScenes(1, size=(48, 60), seed=1)[0].image
    scores: list[float] = []
    run = seg._run

    def recording_run(*args, **kwargs):
        prob, score = run(*args, **kwargs)
        scores.append(float(score))
        return prob, score

    seg._run = recording_run
    try:
        assert seg.segment_image(img).max() >= 1
        assert scores
        everything = seg.segment_image(img, min_score=min(scores))
        nothing = seg.segment_image(img, min_score=max(scores) + 1e-3)
    finally:
        del seg._run
    assert everything.max() >= 1
    assert not nothing.any()


def test_segment_image_still_reaches_a_small_region_inside_a_missed_area() -> None:
    """A miss at the centre of a large unlabelled area must not rule out the smaller regions inside it: here
    the net (stubbed) finds only one 24x24 region, which lies wholly inside the first pointer's inscribed disk."""
    seg = Segmenter.random_init(ALL_SEED, full_image_side=120)  # pointers in image pixels
    image = np.zeros((120, 120, 3), np.uint8)  # square: the first pointer is at the centre, its disk reaches the edges
    target = np.zeros((120, 120), bool)
    target[40:64, 70:94] = True

    def stub_run(img, roi, clicks, prev, window, side, *keys):
        (x, y, _), = clicks
        if target[int(y), int(x)]:
            return target.astype(np.uint8) * 255, 0.9
        return np.zeros(roi.shape, np.uint8), 0.1  # a miss: nothing found at this pointer

    seg._run = stub_run
    # (Without the stop after a run of misses: reaching the region here takes more misses than its default.)
    whole_disk = seg.segment_image(image, miss_disk_fraction=1.0, max_misses_in_a_row=None)
    labels = seg.segment_image(image, max_misses_in_a_row=None)
    assert not whole_disk.any()  # the old rule: the first miss wiped the region from every later pointer
    assert labels.max() == 1 and np.array_equal(labels == 1, target)
    with pytest.raises(ValueError, match="miss_disk_fraction"):
        seg.segment_image(image, miss_disk_fraction=0)


def test_segment_image_stops_after_a_run_of_misses() -> None:
    """max_misses_in_a_row: where the net finds nothing usable again and again, the search gives up instead of
    trying every last pointer (each a net pass); a found segment starts the count again."""
    seg = Segmenter.random_init(ALL_SEED, full_image_side=120)
    image = np.zeros((120, 120, 3), np.uint8)
    calls: list[tuple[float, float]] = []
    found = np.zeros((120, 120), bool)

    def stub_run(img, roi, clicks, prev, window, side, *keys):
        (x, y, _), = clicks
        if prev is None:  # a new pointer (a refinement pass of a hit comes back with its answer as prev)
            calls.append((x, y))
        if found[int(y), int(x)] and roi[int(y), int(x)]:
            return found.astype(np.uint8) * 255, 0.9
        return np.zeros(roi.shape, np.uint8), 0.1

    seg._run = stub_run
    assert not seg.segment_image(image, max_misses_in_a_row=3).any()
    assert len(calls) == 3
    calls.clear()
    unlimited = seg.segment_image(image, max_misses_in_a_row=None)
    assert not unlimited.any() and len(calls) > 10  # without the limit it keeps pointing
    found[30:90, 30:90] = True  # under the first pointer, the image centre
    calls.clear()
    labels = seg.segment_image(image, max_misses_in_a_row=2)
    assert np.array_equal(labels == 1, found) and labels.max() == 1
    assert len(calls) == 3  # the hit, then two misses in a row
    with pytest.raises(ValueError, match="max_misses_in_a_row"):
        seg.segment_image(image, max_misses_in_a_row=0)


def test_first_click_windows_take_the_better_scored_uncut_window_mask() -> None:
    """first_click_windows: the first click also runs in a window centred on it; that mask wins only if the net
    scores it higher and it does not run into the window's edge (an object cut off by the window)."""
    image = np.zeros((100, 200, 3), np.uint8)
    whole = np.zeros((100, 200), bool)
    whole[20:80, 40:160] = True              # the whole-image answer: the click's surroundings as well
    small = np.zeros((100, 200), bool)
    small[45:55, 95:105] = True              # the window's answer: just the small object under the click

    def make(window_answer: np.ndarray, window_score: float) -> Segmenter:
        seg = Segmenter.random_init(ALL_SEED, first_click_windows=(0.5,), refine_first="off")

        def stub_run(img, roi, clicks, prev, window, side, *keys):
            x0, y0, x1, y1 = window
            if (x0, y0, x1, y1) == (0, 0, 200, 100):
                return whole.astype(np.uint8) * 255, 0.6
            return window_answer[y0:y1, x0:x1].astype(np.uint8) * 255, window_score

        seg._run = stub_run
        return seg

    click = [(100, 50, True)]
    assert np.array_equal(make(small, 0.9).predict(image, click).mask, small)
    assert np.array_equal(make(small, 0.5).predict(image, click).mask, whole)   # scored lower: kept whole
    assert np.array_equal(make(whole, 0.9).predict(image, click).mask, whole)   # cut off by the window: kept whole
    with pytest.raises(ValueError, match="first_click_windows"):
        Segmenter.random_init(ALL_SEED, first_click_windows=(1.5,))


def test_the_smaller_view_wins_when_it_finds_a_large_object_under_the_click() -> None:
    """large_object_side: the first click is asked again of the image shown smaller; that answer wins if it covers
    at least large_object_fraction of the ROI and holds the click, whatever the full view found. A small answer
    (a small object) keeps the full view's mask."""
    image = np.zeros((100, 200, 3), np.uint8)
    part = np.zeros((100, 200), bool)
    part[30:70, 60:140] = True               # 16% of the image: the object found in part
    whole = np.zeros((100, 200), bool)
    whole[10:90, 20:180] = True              # the smaller view finds it whole
    tiny = np.zeros((100, 200), bool)
    tiny[45:55, 95:105] = True

    def make(full_answer: np.ndarray, small_answer: np.ndarray) -> tuple[Segmenter, list[int]]:
        seg = Segmenter.random_init(ALL_SEED, first_click_windows=(), refine_first="off", max_side=448,
                                    large_object_side=320, large_object_fraction=0.15,
                                    large_object_refine_sides=(), small_object_refine=False)
        sides: list[int] = []

        def stub_run(img, roi, clicks, prev, window, side, *keys):
            sides.append(side)
            return (small_answer if side == 320 else full_answer).astype(np.uint8) * 255, 0.7

        seg._run = stub_run
        return seg, sides

    click = [(100, 50, True)]
    seg, sides = make(part, whole)
    assert np.array_equal(seg.predict(image, click).mask, whole) and sides == [448, 320]
    seg, sides = make(tiny, whole)
    assert np.array_equal(seg.predict(image, click).mask, whole)   # a large object the full view found in a speck
    seg, _ = make(tiny, tiny)
    assert np.array_equal(seg.predict(image, click).mask, tiny)    # a small object keeps the full view
    off_click = whole.copy()
    off_click[40:60, 90:110] = False
    seg, _ = make(part, off_click)
    assert np.array_equal(seg.predict(image, click).mask, part)    # the smaller view lost the click: kept
    seg, sides = make(part, whole)
    seg.large_object_side = 0
    assert np.array_equal(seg.predict(image, click).mask, part) and sides == [448]   # 0 = off
    with pytest.raises(ValueError, match="large_object"):
        Segmenter.random_init(ALL_SEED, large_object_fraction=0)


def test_a_large_first_mask_is_refined_with_itself_as_the_previous_mask() -> None:
    """large_object_refine_sides: after the smaller view, the click runs again with that view's mask in the
    previous-mask channel, once per side; each pass's mask is kept while it holds the click."""
    image = np.zeros((100, 200, 3), np.uint8)
    part = np.zeros((100, 200), bool)
    part[30:70, 60:140] = True
    whole = np.zeros((100, 200), bool)
    whole[10:90, 20:180] = True
    tighter = np.zeros((100, 200), bool)
    tighter[12:88, 24:176] = True            # the refined outline
    lost = tighter.copy()
    lost[40:60, 90:110] = False              # a refinement that drops the clicked pixel

    def make(refined: list[np.ndarray]) -> tuple[Segmenter, list[tuple[int, bool]]]:
        seg = Segmenter.random_init(ALL_SEED, first_click_windows=(), refine_first="off", max_side=448,
                                    large_object_side=320, large_object_fraction=0.15,
                                    large_object_refine_sides=(320, 448), small_object_refine=False)
        calls: list[tuple[int, bool]] = []
        answers = iter(refined)

        def stub_run(img, roi, clicks, prev, window, side, *keys):
            calls.append((side, prev is not None))
            if prev is not None:
                return next(answers).astype(np.uint8) * 255, 0.8
            return (whole if side == 320 else part).astype(np.uint8) * 255, 0.7

        seg._run = stub_run
        return seg, calls

    click = [(100, 50, True)]
    seg, calls = make([whole, tighter])
    pred = seg.predict(image, click)
    assert np.array_equal(pred.mask, tighter) and pred.score == pytest.approx(0.8)
    assert calls == [(448, False), (320, False), (320, True), (448, True)]
    seg, calls = make([lost, tighter])
    assert np.array_equal(seg.predict(image, click).mask, whole)     # the first refinement lost the click: stop
    assert len(calls) == 3
    with pytest.raises(ValueError, match="large_object_refine_sides"):
        Segmenter.random_init(ALL_SEED, large_object_refine_sides=(8,))


def test_a_small_first_mask_is_refined_once_in_its_zoom_window() -> None:
    """small_object_refine: a first mask below large_object_fraction of the ROI is asked again in the zoom window
    around it, with itself as the previous mask; the answer is kept if it holds the click."""
    image = np.zeros((100, 200, 3), np.uint8)
    rough = np.zeros((100, 200), bool)
    rough[40:60, 90:112] = True
    sharp = np.zeros((100, 200), bool)
    sharp[42:58, 92:108] = True
    lost = np.zeros((100, 200), bool)
    lost[42:58, 60:80] = True                # the refinement wandered off the clicked object

    def make(refined: np.ndarray, enabled: bool = True) -> tuple[Segmenter, list]:
        seg = Segmenter.random_init(ALL_SEED, first_click_windows=(), refine_first="off", max_side=448,
                                    large_object_side=320, large_object_fraction=0.15,
                                    large_object_refine_sides=(), small_object_refine=enabled)
        calls: list = []

        def stub_run(img, roi, clicks, prev, window, side, *keys):
            calls.append((side, prev is not None, window))
            x0, y0, x1, y1 = window
            answer = rough if prev is None else refined
            return answer[y0:y1, x0:x1].astype(np.uint8) * 255, 0.6

        seg._run = stub_run
        return seg, calls

    click = [(100, 50, True)]
    seg, calls = make(sharp)
    assert np.array_equal(seg.predict(image, click).mask, sharp)
    side, with_prev, window = calls[-1]
    assert with_prev and window != (0, 0, 200, 100) and len(calls) == 3   # full view, smaller view, refinement
    seg, _ = make(lost)
    assert np.array_equal(seg.predict(image, click).mask, rough)
    seg, calls = make(sharp, enabled=False)
    assert np.array_equal(seg.predict(image, click).mask, rough) and not any(p for _, p, _ in calls)


def test_flip_average_answers_a_mirrored_image_with_the_mirrored_mask(scene: np.ndarray) -> None:
    h, w = scene.shape[:2]  # 120x160: at max_side 160 the net sees the pixels unresized
    seg = make(PARTIAL_SEED, flip_average=True)
    x, y = 50, 70
    a = seg.predict(scene, [(x, y, True)])
    b = seg.predict(np.ascontiguousarray(scene[:, ::-1]), [(w - 1 - x, y, True)])
    assert a.mask.any() and not a.mask.all()
    mirrored = b.mask[:, ::-1]
    assert (a.mask & mirrored).sum() / (a.mask | mirrored).sum() > 0.99
    assert abs(a.score - b.score) < 1e-4


def test_bad_option_values_are_refused() -> None:
    with pytest.raises(ValueError, match="refine_first"):
        make(ALL_SEED, refine_first="always")
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="zoom_min_fraction"):
            make(ALL_SEED, zoom_min_fraction=bad)
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            make(ALL_SEED, threshold=bad)
    for bad in ({"guided_radius": -1}, {"guided_radius": 4, "guided_eps": 0}):
        with pytest.raises(ValueError, match="guided"):
            make(ALL_SEED, **bad)


def test_a_higher_threshold_gives_a_smaller_mask(scene: np.ndarray) -> None:
    """The first click's mask at threshold 0.7 lies inside the one at 0.3 (the same probabilities, cut higher)."""
    h, w = scene.shape[:2]
    low = make(PARTIAL_SEED, threshold=0.3).predict(scene, [(w // 2, h // 2, True)]).mask
    high = make(PARTIAL_SEED, threshold=0.7).predict(scene, [(w // 2, h // 2, True)]).mask
    assert not (high & ~low).any()
    assert low.sum() > high.sum()


@pytest.mark.parametrize("seed", [ALL_SEED, 2])
def test_refine_best_never_scores_below_the_whole_view(seed: int) -> None:
    """refine_first="best" keeps the zoomed first-click mask only when the net rates it higher. A small ROI
    keeps the mask small, so the zoomed second pass really runs (it changes the score under "prev"). The first
    click's windows are off: they are a separate choice by score (their own test)."""
    scene = SyntheticScenes(1, size=(240, 320), seed=3)[0].image
    zoom_changed = 0
    for x, y in [(40, 40), (160, 120), (280, 200)]:
        roi = np.zeros(scene.shape[:2], bool)
        roi[max(0, y - 30):y + 30, max(0, x - 30):x + 30] = True
        whole = make(seed, refine_first="off", first_click_windows=()).predict(scene, [(x, y, True)], roi=roi)
        best = make(seed, refine_first="best", first_click_windows=()).predict(scene, [(x, y, True)], roi=roi)
        prev = make(seed, refine_first="prev", first_click_windows=()).predict(scene, [(x, y, True)], roi=roi)
        zoom_changed += abs(prev.score - whole.score) > 1e-6
        assert best.score >= whole.score - 1e-6
        if best.score == whole.score:
            assert np.array_equal(best.mask, whole.mask)
    assert zoom_changed


# ---- readings of the first click (Tab in the annotator) ----

def _two_reading_segmenter(**options) -> Segmenter:
    """A Segmenter whose net (a stand-in for _run) reads a click at (80, 60) two ways: the full view sees a small
    disk (a part), the smaller whole-image view a large box (the whole)."""
    seg = make(PARTIAL_SEED, large_object_side=96, large_object_refine_sides=(96, 160), **options)
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (xx - 80) ** 2 + (yy - 60) ** 2 <= 8 ** 2
    box = (xx >= 30) & (xx < 130) & (yy >= 20) & (yy < 100)

    def run(image, roi, clicks, prev, window, side, image_key="", roi_key=""):
        x0, y0, x1, y1 = window
        if prev is not None:
            full = prev.copy()                      # a refinement keeps what it was given
            for x, y, positive in clicks[1:]:       # corrections: a disk of 5 px added / removed
                d = (xx - x) ** 2 + (yy - y) ** 2 <= 5 ** 2
                full = full | d if positive else full & ~d
            score = 0.7
        elif side == seg.large_object_side:
            full, score = box, 0.9
        else:
            full, score = disk, 0.6
        return full[y0:y1, x0:x1].astype(np.uint8) * 255, score

    seg._run = run
    return seg


def test_first_click_offers_its_distinct_readings_and_chains_build_on_the_chosen_one(scene: np.ndarray) -> None:
    seg = _two_reading_segmenter()
    click = (80, 60, True)
    pred = seg.predict(scene, [click])
    assert len(pred.readings) == 2 and pred.reading == 0
    assert np.array_equal(pred.readings[0], pred.mask)
    sizes = sorted(int(r.sum()) for r in pred.readings)
    assert sizes[0] < 300 < 5000 < sizes[1]          # the part and the whole
    for r in pred.readings:
        assert r[60, 80]
    inter = (pred.readings[0] & pred.readings[1]).sum() / (pred.readings[0] | pred.readings[1]).sum()
    assert inter < seg.reading_overlap
    other = seg.predict(scene, [click], reading=1)
    assert other.reading == 1 and np.array_equal(other.mask, pred.readings[1])
    assert seg.predict(scene, [click], reading=7).reading == 1   # past the last: the last
    # A correction builds on the reading chosen, and the chains of different readings do not mix.
    neg = (60, 40, False) if pred.readings[1][40, 60] else (95, 75, False)
    on_other = seg.predict(scene, [click, neg], reading=1).mask
    on_default = seg.predict(scene, [click, neg]).mask
    fresh = _two_reading_segmenter().predict(scene, [click, neg]).mask
    assert np.array_equal(on_default, fresh)
    assert not np.array_equal(on_other, on_default)
    assert (on_other & ~pred.readings[1]).sum() == 0 and (on_default & ~pred.readings[0]).sum() == 0


def test_readings_stay_in_the_roi_and_can_be_limited(scene: np.ndarray) -> None:
    seg = _two_reading_segmenter()
    roi = np.zeros(scene.shape[:2], bool)
    roi[:, 50:] = True
    pred = seg.predict(scene, [(80, 60, True)], roi=roi)
    assert pred.readings and all(not (r & ~roi).any() for r in pred.readings)
    seg.max_readings = 1
    seg._readings = None
    assert len(seg.predict(scene, [(81, 60, True)]).readings) == 1


def test_a_first_click_previews_its_plain_view_before_the_refinements(scene: np.ndarray) -> None:
    """The first click of an object runs up to eight net passes (views, windows, refinements: about 0.5-1 s on a
    laptop). `preview` gets the first pass's mask as soon as it exists, so a window can show it at once."""
    seg = make(PARTIAL_SEED)
    plain = make(PARTIAL_SEED, refine_first="off", first_click_windows=(), large_object_side=0,
                 small_object_refine=False)
    roi = np.ones(scene.shape[:2], bool)
    roi[:, :30] = False
    click = (80, 60, True)
    seen = []
    pred = seg.predict(scene, [click], roi=roi, preview=lambda m, s: seen.append((m.copy(), s)))
    assert len(seen) == 1
    mask, score = seen[0]
    assert mask.shape == scene.shape[:2] and mask.dtype == bool and not (mask & ~roi).any()
    expected = plain.predict(scene, [click], roi=roi)
    assert np.array_equal(mask, expected.mask) and score == pytest.approx(expected.score)
    assert pred.mask.shape == mask.shape  # the final answer still comes back as before
    # Nothing more to preview once the first click is known: a repeat or a correction answers at once.
    seg.predict(scene, [click], roi=roi, preview=lambda m, s: seen.append(m))
    seg.predict(scene, [click, (30, 20, False)], roi=roi, preview=lambda m, s: seen.append(m))
    assert len(seen) == 1


def test_the_preview_of_a_large_image_is_at_full_resolution() -> None:
    big = np.zeros((1200, 2000, 3), np.uint8)
    big[300:900, 500:1500] = (200, 60, 60)
    seg = Segmenter.random_init(PARTIAL_SEED, max_side=160, full_image_side=96, work_side=400)
    seen = []
    seg.predict(big, [(1000, 600, True)], preview=lambda m, s: seen.append(m))
    assert len(seen) == 1 and seen[0].shape == (1200, 2000)


def test_a_first_click_the_net_is_sure_of_skips_the_window_views() -> None:
    """first_click_confident: once the first mask scores at least this, the window views are not run (their
    passes are the first click's largest cost); below it they run and may win as before; 1.0 never skips."""
    image = np.zeros((100, 200, 3), np.uint8)
    whole = np.zeros((100, 200), bool)
    whole[20:80, 40:160] = True
    small = np.zeros((100, 200), bool)
    small[45:55, 95:105] = True

    def first_click(whole_score: float, confident: float) -> tuple[np.ndarray, int]:
        seg = Segmenter.random_init(ALL_SEED, first_click_windows=(0.5, 0.3), refine_first="off",
                                    large_object_side=0, small_object_refine=False, first_click_confident=confident)
        windows_run = []

        def stub_run(img, roi, clicks, prev, window, side, *keys):
            x0, y0, x1, y1 = window
            if (x0, y0, x1, y1) == (0, 0, 200, 100):
                return whole.astype(np.uint8) * 255, whole_score
            windows_run.append(window)
            return small[y0:y1, x0:x1].astype(np.uint8) * 255, 0.99

        seg._run = stub_run
        return seg.predict(image, [(100, 50, True)]).mask, len(windows_run)

    mask, n = first_click(0.95, 0.9)
    assert n == 0 and np.array_equal(mask, whole)
    mask, n = first_click(0.6, 0.9)              # unsure: the first window runs and wins with 0.99
    assert n == 1 and np.array_equal(mask, small)
    mask, n = first_click(0.95, 1.0)             # never skips: both windows run, the higher score wins
    assert n == 2 and np.array_equal(mask, small)
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="first_click_confident"):
            Segmenter.random_init(ALL_SEED, first_click_confident=bad)


def test_segment_image_regions_that_touch_at_the_net_size_touch_at_full_size() -> None:
    """Two regions that meet at the net's size, each with probabilities just over the cut along their shared
    border: drawn smooth at full size, both fell under the cut between the border cells, and a thin unlabelled
    sliver ran along the border for the person to paint."""
    seg = Segmenter.random_init(ALL_SEED, full_image_side=40)  # 160 px image, 40 px at the net: 4x
    image = np.zeros((160, 160, 3), np.uint8)
    xs = np.arange(40)[None, :].repeat(40, 0)

    def stub_run(img, roi, clicks, prev, window, side, *keys):
        (x, _, _), = clicks
        if x < 20:
            prob = np.where(xs < 19, 255, np.where(xs == 19, 140, 0))
        else:
            prob = np.where(xs > 20, 255, np.where(xs == 20, 140, 0))
        return (prob * roi).astype(np.uint8), 0.9

    seg._run = stub_run
    labels = seg.segment_image(image)
    assert labels.max() == 2 and (labels > 0).all()
    assert len(np.unique(labels[:, :76])) == 1 and len(np.unique(labels[:, 84:])) == 1


def test_segment_image_refines_each_segment_but_gates_on_its_first_reading() -> None:
    """Each pointer's answer goes back to the net as the previous mask (refine_passes times) and the refined
    outline is the segment; whether it is a segment at all stays the first pass's call, since the net rates its
    own refined answers higher (gating on those let more false segments through). Stubbed net: a first answer
    that spills over the region's edge, a refined one that fits it."""
    seg = Segmenter.random_init(ALL_SEED, full_image_side=120)
    image = np.zeros((120, 120, 3), np.uint8)
    region = _box_mask((120, 120), 30, 90, 30, 90)
    spill = _box_mask((120, 120), 20, 100, 20, 100)
    first_score = {"value": 0.9}
    passes: list[bool] = []

    def stub_run(img, roi, clicks, prev, window, side, *keys):
        passes.append(prev is not None)
        if prev is None:
            return (spill & roi).astype(np.uint8) * 255, first_score["value"]
        return (region & roi).astype(np.uint8) * 255, 0.99

    seg._run = stub_run
    labels = seg.segment_image(image, max_segments=1, refine_passes=2)
    assert np.array_equal(labels == 1, region), "the refined outline is the segment"
    assert passes == [False, True, True]
    passes.clear()
    unrefined = seg.segment_image(image, max_segments=1, refine_passes=0)
    assert np.array_equal(unrefined == 1, spill) and passes == [False]
    first_score["value"] = 0.1  # rated poorly at first: a miss, however well the refinement would score
    passes.clear()
    assert not seg.segment_image(image, max_segments=1, max_misses_in_a_row=1).any()
    assert passes == [False], "no refinement pass is spent on a miss"
    with pytest.raises(ValueError, match="refine_passes"):
        seg.segment_image(image, refine_passes=-1)
