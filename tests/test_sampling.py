"""Training examples (train.sampling): the pointer lies in the chosen segment, the target is that segment within
the ROI, and correction examples show a previous mask with clicks on its errors, as the Segmenter will."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import train.sampling as sampling
from train.sample import Sample
from train.sampling import SamplingConfig, interior_point, make_example, next_click

SIZE = 64
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220), (120, 60, 160)]


def _flat_sample() -> Sample:
    """Six disjoint segments covering a 120x160 image, each one flat colour, plus an ignored strip."""
    h, w = 120, 160
    labels = np.zeros((h, w), np.int32)
    labels[:, 80:] = 1                                       # two background halves
    cv2.rectangle(labels, (10, 10), (60, 50), 2, -1)         # objects
    cv2.circle(labels, (115, 40), 25, 3, -1)
    cv2.ellipse(labels, (50, 90), (35, 18), 20, 0, 360, 4, -1)
    cv2.rectangle(labels, (100, 80), (150, 112), 5, -1)
    image = np.array(COLOURS, np.uint8)[labels]
    ignore = np.zeros((h, w), bool)
    ignore[:, 78:80] = True  # an uncertain border between the halves
    segments = [(labels == k) & ~ignore for k in range(6)]
    return Sample(image, segments, ignore, "flat", list(range(6)))


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Records every encode_pointer call of make_example and turns colour jitter off, so colours identify
    segments in the example's image."""
    calls: list[dict] = []
    real = sampling.encode_pointer

    def spy(h, w, clicks, prev_mask=None, **kw):
        calls.append({"clicks": list(clicks), "prev": None if prev_mask is None else prev_mask.copy()})
        return real(h, w, clicks, prev_mask, **kw)

    monkeypatch.setattr(sampling, "encode_pointer", spy)
    monkeypatch.setattr(sampling, "_color_jitter", lambda image, rng: image)
    return calls


def _examples(cfg: SamplingConfig, n: int, recorded: list[dict], fully_labelled: bool = True):
    sample = _flat_sample()
    out = []
    for seed in range(n):
        recorded.clear()
        ex = make_example(sample, np.random.default_rng(seed), cfg, fully_labelled)
        if ex is not None:
            assert len(recorded) == 1
            out.append((ex, recorded[0]))
    assert len(out) >= n * 0.7  # sampling rarely gives up on a sample this easy
    return out


def _rgb(ex: dict) -> np.ndarray:
    return np.round(ex["image"].transpose(1, 2, 0) * 128 + 127).astype(np.int32)


def test_example_arrays(recorded) -> None:
    for ex, _ in _examples(SamplingConfig(size=SIZE), 10, recorded):
        assert ex["image"].shape == (3, SIZE, SIZE) and ex["image"].dtype == np.float32
        assert ex["pointer"].shape == (3, SIZE, SIZE) and ex["pointer"].dtype == np.float32
        for k in ("roi", "target", "valid"):
            assert ex[k].shape == (1, SIZE, SIZE) and ex[k].dtype == np.float32
            assert set(np.unique(ex[k])) <= {0.0, 1.0}


def test_pointer_and_target_lie_in_one_segment_within_the_roi(recorded) -> None:
    colours = np.array(COLOURS, np.int32)
    kernel = np.ones((5, 5), np.uint8)
    seen_segments = set()
    for ex, rec in _examples(SamplingConfig(size=SIZE, p_correction=0.0), 40, recorded):
        target, roi = ex["target"][0] > 0.5, ex["roi"][0] > 0.5
        assert target.any()
        assert not (target & ~roi).any()  # target inside the ROI
        x, y, positive = rec["clicks"][0]
        assert positive and len(rec["clicks"]) == 1 and rec["prev"] is None
        assert target[y, x]                      # the pointer lies in the target ...
        assert ex["pointer"][0, y, x] == 1.0     # ... and is drawn there
        assert not ex["pointer"][1].any() and not ex["pointer"][2].any()
        # The target is one segment: its interior has the colour of the segment under the pointer.
        rgb = _rgb(ex)
        k = int(np.flatnonzero((colours == rgb[y, x]).all(1))[0])
        seen_segments.add(k)
        inner = cv2.erode(target.astype(np.uint8), kernel).astype(bool)
        # Nearest colour, not equality: at the image's edge bilinear warping blends the colour with the black border.
        nearest = np.argmin(((rgb[inner][:, None, :] - colours[None]) ** 2).sum(2), 1)
        assert (nearest == k).all()
        # ... and no pixel of the target lies inside another segment.
        for j, c in enumerate(colours):
            if j == k:
                continue
            other = cv2.erode((rgb == c).all(2).astype(np.uint8), kernel).astype(bool)
            assert not (target & other).any()
    assert len(seen_segments) >= 3  # the check ran on several different segments


def test_target_is_the_whole_segment_part_in_roi(recorded) -> None:
    """Fully labelled data: every pixel of the chosen segment inside the ROI and the crop is target."""
    kernel = np.ones((5, 5), np.uint8)
    for ex, rec in _examples(SamplingConfig(size=SIZE, p_correction=0.0), 20, recorded):
        target, roi, valid = (ex[k][0] > 0.5 for k in ("target", "roi", "valid"))
        x, y, _ = rec["clicks"][0]
        rgb = _rgb(ex)
        same = cv2.erode((rgb == rgb[y, x]).all(2).astype(np.uint8), kernel).astype(bool)
        # Only the interior of the segment's colour region that is connected to the pointer.
        _, comp = cv2.connectedComponents(same.astype(np.uint8), connectivity=4)
        if comp[y, x] == 0:
            continue
        region = comp == comp[y, x]
        assert not (region & roi & valid & ~target).any()
        assert (rgb[target & cv2.erode(target.astype(np.uint8), kernel).astype(bool)] == rgb[y, x]).all()


def test_correction_examples(recorded) -> None:
    cfg = SamplingConfig(size=SIZE, p_correction=1.0, max_extra_clicks=3)
    n_pos = n_neg = n_multi = 0
    for ex, rec in _examples(cfg, 40, recorded):
        target, roi, valid = (ex[k][0] > 0.5 for k in ("target", "roi", "valid"))
        prev = rec["prev"]
        assert prev is not None                                  # a previous-mask channel ...
        np.testing.assert_array_equal(ex["pointer"][2], prev)    # ... is what the net sees
        prev = prev > 0.5
        assert not (prev & ~roi).any()                           # a previous answer never left the ROI
        clicks = rec["clicks"]
        assert clicks[0][2] and target[clicks[0][1], clicks[0][0]]
        if np.array_equal(prev & valid, target & valid):
            assert len(clicks) == 1  # nothing to correct, no correction click
            continue
        assert len(clicks) >= 2
        n_multi += len(clicks) > 2
        for x, y, positive in clicks[1:]:
            assert ex["pointer"][0 if positive else 1, y, x] == 1.0
            assert valid[y, x] and roi[y, x]
            # Positive clicks go on the segment, negative ones off it.
            assert target[y, x] == positive
            n_pos += positive
            n_neg += not positive
        # The last click corrects the previous mask the net is shown: it lies on that mask's error, with the
        # sign of the error (missed pixel -> positive, wrong pixel -> negative).
        x, y, positive = clicks[-1]
        if positive:
            assert target[y, x] and not prev[y, x]
        else:
            assert prev[y, x] and not target[y, x]
    assert n_pos > 0 and n_neg > 0 and n_multi > 0


def test_next_click_on_larger_missed_region() -> None:
    target = np.zeros((64, 64), bool)
    target[10:50, 10:50] = True
    pred = target.copy()
    pred[12:29, 12:29] = False          # a 17x17 hole: missed pixels
    pred[56:60, 56:60] = True           # a 4x4 false positive, smaller
    x, y, positive = next_click(pred, target, np.ones_like(target))
    assert positive
    assert (x, y) == (20, 20)           # the centre of the hole, the pixel farthest from its border
    # Swap the sizes: a large false positive wins, with a negative click at its centre.
    pred2 = target.copy()
    pred2[20:24, 20:24] = False
    pred2[50:64, 30:64] = True          # 14 rows outside the target
    x, y, positive = next_click(pred2, target, np.ones_like(target))
    assert not positive and not target[y, x] and pred2[y, x]
    assert 55 <= y <= 58 and 36 <= x <= 57  # at least 6 pixels inside the error region on every side


def test_next_click_none_without_valid_error() -> None:
    target = np.zeros((32, 32), bool)
    target[8:24, 8:24] = True
    assert next_click(target.copy(), target, np.ones_like(target)) is None
    pred = target.copy()
    pred[0:4, :] = True
    valid = np.ones_like(target)
    valid[0:4, :] = False   # errors only on ignored pixels do not count
    assert next_click(pred, target, valid) is None


def test_interior_point() -> None:
    m = np.zeros((40, 60), bool)
    m[5:35, 10:20] = True   # a thin bar
    m[10:31, 30:51] = True  # a 21x21 square: its centre is the most interior pixel
    assert interior_point(m) == (40, 20)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = interior_point(m, rng)
        assert m[y, x] and 30 < x < 51


def test_sample_without_usable_segment_gives_none() -> None:
    s = _flat_sample()
    tiny = np.zeros(s.ignore.shape, bool)
    tiny[0:3, 0:3] = True
    s2 = Sample(s.image, [tiny], s.ignore, "tiny")
    assert make_example(s2, np.random.default_rng(0), SamplingConfig(size=SIZE)) is None
    assert make_example(Sample(s.image, [], s.ignore, "empty"), np.random.default_rng(0)) is None


def test_sweep_examples_ask_what_segment_image_asks(recorded) -> None:
    """p_sweep: the pointer sits at (near) the interior-most point of the ROI, as segment_image puts it, and the
    target is the whole part of the segment under it that lies in the ROI, whichever segment that is."""
    colours = np.array(COLOURS, np.int32)
    kernel = np.ones((5, 5), np.uint8)
    seen = set()
    for ex, rec in _examples(SamplingConfig(size=SIZE, p_sweep=1.0), 40, recorded):
        target, roi, valid = (ex[k][0] > 0.5 for k in ("target", "roi", "valid"))
        assert len(rec["clicks"]) == 1 and rec["prev"] is None
        x, y, positive = rec["clicks"][0]
        assert positive and target[y, x] and roi[y, x]
        assert not (target & ~roi).any()
        dist = cv2.distanceTransform(np.pad((roi & valid).astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        assert dist[y, x] >= 0.9 * dist.max() - 1e-6
        rgb = _rgb(ex)
        nearest = np.argmin(((rgb[:, :, None, :] - colours[None, None]) ** 2).sum(3), 2)
        k = int(nearest[y, x])
        seen.add(k)
        same = (nearest == k) & roi & valid
        inner = cv2.erode(same.astype(np.uint8), kernel).astype(bool)
        assert not (inner & ~target).any()  # the whole segment part in the ROI, not just around the pointer
    assert len(seen) >= 2


def test_sweep_needs_full_labels(recorded) -> None:
    """One-object-per-file data cannot say which segment lies under an arbitrary pointer: no sweep examples."""
    for ex, rec in _examples(SamplingConfig(size=SIZE, p_sweep=1.0, p_correction=0.0), 20, recorded,
                             fully_labelled=False):
        x, y, _ = rec["clicks"][0]
        assert ex["target"][0, y, x] == 1.0


def test_scale_range_sets_how_much_of_the_image_a_crop_shows(recorded) -> None:
    # A click shows the whole image (scale 1.0 of "fits the crop"); scale_range chooses whether training crops
    # are zoomed in on it (> 1) or show it smaller, with a padded margin (< 1).
    def shown(scale: float) -> list[float]:  # share of the crop that is image (the sample has no black pixel)
        cfg = SamplingConfig(size=SIZE, scale_range=(scale, scale))
        return [float((_rgb(ex).sum(-1) > 3).mean()) for ex, _ in _examples(cfg, 10, recorded)]

    small, large = shown(0.5), shown(2.0)
    assert max(small) < 0.25   # the whole 120x160 image at half the fitting size: 24x32 of a 64x64 crop
    assert min(large) > 0.9    # zoomed in: the crop lies inside the image (but for the thin ignored strip)


def test_trainer_refuses_an_empty_scale_range(tmp_path) -> None:
    from train.trainer import TrainConfig, train

    with pytest.raises(ValueError, match="scale-min"):
        train(TrainConfig(sources=["synthetic:4"], out=str(tmp_path), steps=1, crop=64, scale_min=2.0, scale_max=1.0))


def test_rotated_crops_keep_masks_on_their_pixels(recorded) -> None:
    # Rotation is part of the same warp as scale and crop: a target that slid off its object would teach the net
    # to segment the wrong pixels. Zoomed in (scale 2), an unrotated crop lies inside the image; rotated crops show
    # the black outside in their corners.
    cfg = SamplingConfig(size=SIZE, scale_range=(2.0, 2.0), rotate_deg=40.0, p_correction=0.0)
    outside_shares = []
    for ex, rec in _examples(cfg, 20, recorded):
        rgb = _rgb(ex)
        target = ex["target"][0] > 0.5
        x, y, _ = rec["clicks"][0]
        assert target[y, x]
        core = cv2.erode(target.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if core.sum() >= 10:
            colours, counts = np.unique(rgb[core].reshape(-1, 3), axis=0, return_counts=True)
            assert counts.max() / counts.sum() > 0.95, "the target covers pixels of another segment"
        outside_shares.append(float((rgb.sum(-1) <= 3).mean()))
    assert max(outside_shares) > 0.02


def test_grey_augmentation_removes_colour_and_is_off_by_default(recorded) -> None:
    grey = [_rgb(ex) for ex, _ in _examples(SamplingConfig(size=SIZE, p_grey=1.0), 5, recorded)]
    assert all(np.abs(im[..., 0] - im[..., 1]).max() <= 1 and np.abs(im[..., 1] - im[..., 2]).max() <= 1
               for im in grey)
    plain = [_rgb(ex) for ex, _ in _examples(SamplingConfig(size=SIZE), 5, recorded)]
    assert any(np.abs(im[..., 0] - im[..., 2]).max() > 50 for im in plain)
