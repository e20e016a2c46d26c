"""BSDS region measures (train.region_metrics) on hand-made cases whose values are worked out by hand."""
import itertools
import math

import numpy as np
import pytest

from train.region_metrics import region_scores, summarize_region_scores


def a(rows):
    return np.array(rows, np.int64)


def test_identical_segmentations_score_perfectly_whatever_the_label_values():
    gt = a([[1, 1, 2], [1, 3, 2], [3, 3, 2]])
    seg = a([[7, 7, 0], [7, 9, 0], [9, 9, 0]])  # the same partition, other labels (0 is a region of S)
    r = region_scores(seg, [gt])
    assert r["covering"] == pytest.approx(1.0)
    assert r["pri"] == pytest.approx(1.0)
    assert r["voi"] == pytest.approx(0.0, abs=1e-12)
    assert r["n_regions"] == 3


def test_one_region_against_two_halves_on_two_pixels():
    # Each human region (1 px) meets S's region (2 px) with IoU 1/2: covering (1 * 1/2 + 1 * 1/2) / 2 = 1/2.
    # The one pixel pair is together in S, apart in G: Rand index 0. H(S) = 0, H(G) = 1 bit, H(S, G) = 1 bit:
    # VoI = 2 H(S, G) - H(S) - H(G) = 1 bit.
    r = region_scores(a([[4, 4]]), [a([[1, 2]])])
    assert r["covering"] == pytest.approx(0.5)
    assert r["pri"] == pytest.approx(0.0)
    assert r["voi"] == pytest.approx(1.0)
    assert region_scores(a([[4, 4]]), [a([[1, 2]])], base=math.e)["voi"] == pytest.approx(math.log(2))


def test_two_humans_who_disagree():
    # Human A: one region (covered with IoU 1: 2 px); human B: two halves (1 px + 1 px at IoU 1/2).
    # Covering accumulated over both humans, pixel-weighted: (2 + 1) / 4. PRI: the pair is together for half
    # of the humans and together in S: p = 1/2. VoI: (0 + 1) / 2 bits.
    r = region_scores(a([[3, 3]]), [a([[1, 1]]), a([[1, 2]])])
    assert r["covering"] == pytest.approx(0.75)
    assert r["covering_cnt"] == pytest.approx(3.0) and r["covering_total"] == pytest.approx(4.0)
    assert r["pri"] == pytest.approx(0.5)
    assert r["voi"] == pytest.approx(0.5)
    assert r["n_humans"] == 2


def test_crossing_halves_on_a_2x2_image():
    # S: left | right columns; G: top / bottom rows. Every G region (2 px) meets each S region in 1 px: IoU 1/3.
    # Pairs: 6; together in S: (0,2), (1,3); together in G: (0,1), (2,3); the 2 diagonal pairs are apart in
    # both: RI 2/6. H(S) = H(G) = 1 bit, H(S, G) = 2 bits: VoI 2 bits.
    seg = a([[1, 2], [1, 2]])
    gt = a([[1, 1], [2, 2]])
    r = region_scores(seg, [gt])
    assert r["covering"] == pytest.approx(1 / 3)
    assert r["pri"] == pytest.approx(1 / 3)
    assert r["voi"] == pytest.approx(2.0)


def test_covering_is_of_the_humans_by_the_machine():
    # Four single-pixel machine regions cover the one human region with IoU 1/4 at best; two halves with 1/2.
    assert region_scores(a([[1, 2], [3, 4]]), [a([[1, 1], [1, 1]])])["covering"] == pytest.approx(0.25)
    assert region_scores(a([[1, 1], [2, 2]]), [a([[5, 5], [5, 5]])])["covering"] == pytest.approx(0.5)
    # G: 3 px region + 1 px region; S: one region. Human regions: 3 * 3/4 + 1 * 1/4 = 2.5 of 4 px.
    assert region_scores(a([[1, 1], [1, 1]]), [a([[1, 1], [1, 2]])])["covering"] == pytest.approx(2.5 / 4)


def test_machine_zero_is_one_region():
    # segment_image's 0 ("not segmented") is one region of S: here it matches a human region exactly.
    r = region_scores(a([[0, 0], [1, 1]]), [a([[5, 5], [7, 7]])])
    assert (r["covering"], r["pri"], r["voi"]) == pytest.approx((1.0, 1.0, 0.0))


def test_human_zero_is_unlabelled():
    # The human's 0 pixel belongs to no human region and no pair, but still to S's region area (IoU 3/4).
    r = region_scores(a([[2, 2], [2, 2]]), [a([[0, 3], [3, 3]])])
    assert r["covering"] == pytest.approx(0.75)
    assert r["pri"] == pytest.approx(1.0)
    assert r["voi"] == pytest.approx(0.0, abs=1e-12)


def test_pri_equals_the_pixel_pair_definition():
    rng = np.random.default_rng(3)
    seg = rng.integers(0, 3, (4, 5))
    humans = [rng.integers(1, 4, (4, 5)) for _ in range(3)]
    s, hs = seg.ravel(), [h.ravel() for h in humans]
    terms = []
    for i, j in itertools.combinations(range(s.size), 2):
        c = float(s[i] == s[j])
        p = np.mean([float(h[i] == h[j]) for h in hs])
        terms.append(c * p + (1 - c) * (1 - p))
    assert region_scores(seg, humans)["pri"] == pytest.approx(np.mean(terms))


def test_voi_is_the_sum_of_conditional_entropies():
    # S = [1 1 2 2], G = [1 2 2 2]: H(G|S) = 1/2 (half of the pixels, in S's first region, split 1:1);
    # H(S|G) = 3/4 * H(1/3, 2/3) bits (G's second region, 3 px, split 1:2 by S).
    h = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))
    r = region_scores(a([[1, 1, 2, 2]]), [a([[1, 2, 2, 2]])])
    assert r["voi"] == pytest.approx(0.5 + 0.75 * h)


def test_data_set_covering_is_pixel_weighted_pri_and_voi_mean_over_images():
    small = region_scores(a([[4, 4]]), [a([[1, 2]])])             # covering 1/2 of 2 px
    large = region_scores(a([[1, 1], [2, 2]]), [a([[1, 1], [2, 2]])])  # covering 1 of 4 px
    s = summarize_region_scores([small, large])
    assert s["covering"] == pytest.approx((1 + 4) / (2 + 4))
    assert s["covering_image_mean"] == pytest.approx(0.75)
    assert s["pri"] == pytest.approx(0.5)
    assert s["voi"] == pytest.approx(0.5)
    assert s["n_images"] == 2


def test_sizes_must_agree_and_a_human_is_needed():
    with pytest.raises(ValueError):
        region_scores(a([[1, 2]]), [a([[1], [2]])])
    with pytest.raises(ValueError):
        region_scores(a([[1, 2]]), [])
