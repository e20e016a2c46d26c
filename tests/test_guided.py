"""The guided filter moves a blurred mask's outline onto the image's edge, and leaves flat regions alone."""
import numpy as np
import cv2
import pytest

from model.guided import guided_filter


def _scene(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((h, w), bool)
    cv2.circle(truth.view(np.uint8), (60, 50), 28, 1, -1)
    image = np.where(truth[..., None], np.array([200, 60, 40], np.uint8), np.array([40, 90, 180], np.uint8))
    noise = np.random.default_rng(0).normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), truth


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_blurred_outline_snaps_to_the_edge() -> None:
    image, truth = _scene()
    # A coarse prediction: the truth shifted by 4 px and blurred, as a bilinear upsampling of a low-res map gives.
    shifted = np.roll(truth, 4, axis=1).astype(np.float32)
    coarse = cv2.GaussianBlur(shifted, (0, 0), 4)
    before = _iou(coarse > 0.5, truth)
    after = _iou(guided_filter(image, coarse, 6, 1e-3) > 0.5, truth)
    assert before < 0.9
    assert after > before + 0.03


def test_flat_image_only_smooths() -> None:
    flat = np.full((40, 50, 3), 120, np.uint8)
    p = np.zeros((40, 50), np.float32)
    p[:, 25:] = 1
    out = guided_filter(flat, p, 3, 1e-2)
    assert out.shape == p.shape
    # No edge in the guide: the output is the box mean, so the step becomes a ramp centred where it was.
    assert np.allclose(out[:, :18], 0, atol=1e-4) and np.allclose(out[:, 32:], 1, atol=1e-4)
    assert ((out > 0.5) == (p > 0.5)).mean() > 0.97


def test_radius_zero_is_identity_and_bad_guide_is_refused() -> None:
    image, truth = _scene()
    p = truth.astype(np.float32)
    assert np.array_equal(guided_filter(image, p, 0, 1e-2), p)
    with pytest.raises(ValueError):
        guided_filter(image[:10], p, 2, 1e-2)


def test_one_guide_filters_many_maps_as_fresh_filters_do() -> None:
    """segment_image filters every pointer's map with the same guide: reusing its statistics changes nothing."""
    from model.guided import GuidedFilter
    image, truth = _scene()
    guide = GuidedFilter(image, 4, 0.01)
    for shift in (0, 3, 7):
        coarse = cv2.GaussianBlur(np.roll(truth, shift, axis=0).astype(np.float32), (0, 0), 3)
        np.testing.assert_allclose(guide(coarse), guided_filter(image, coarse, 4, 0.01), atol=1e-5)
    with pytest.raises(ValueError):
        guide(np.zeros((10, 10), np.float32))


def test_segment_image_with_a_reused_guide_matches_a_fresh_filter_per_pointer(monkeypatch) -> None:
    import model.segmenter as segmenter_module
    from model import Segmenter
    from model.guided import GuidedFilter
    image, _ = _scene(120, 160)
    seg = Segmenter.random_init(seed=3, full_image_side=96)
    built = []

    class Counting(GuidedFilter):
        def __init__(self, *a, **k):
            built.append(1)
            super().__init__(*a, **k)

    monkeypatch.setattr(segmenter_module, "GuidedFilter", Counting)
    reused = seg.segment_image(image, min_score=0.0, min_area_fraction=0.001)
    runs = len(built)
    # Fresh filter per pointer: forget the guide before every run.
    original_run = seg._run

    def forgetful_run(*a, **k):
        seg._guide = None
        return original_run(*a, **k)

    monkeypatch.setattr(seg, "_run", forgetful_run)
    built.clear()
    fresh = seg.segment_image(image, min_score=0.0, min_area_fraction=0.001)
    assert runs == 1 and len(built) > 1  # the reuse really happened, and the comparison really ran fresh
    np.testing.assert_array_equal(reused, fresh)
