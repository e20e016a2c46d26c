"""Whole-image region measures: class-agnostic panoptic quality (PQ, COCO's definition with one category) and the
BSDS500 benchmark's segmentation covering, Probabilistic Rand Index (PRI)
and Variation of Information (VoI), as defined in Arbelaez, Maire, Fowlkes, Malik, "Contour detection and
hierarchical image segmentation", TPAMI 2011, and computed by the benchmark's code (bench/benchmarks/
evaluation_reg_image.m, match_segmentations.m, match_segmentations2.m, collect_eval_reg.m).

A machine segmentation S (HxW integer labels) is compared with the human segmentations G_1..G_K of one image.
Everything is computed from one contingency table per human (np.unique + np.bincount), never over pixel pairs.

* Covering of the humans by S, as the benchmark accumulates it ("GT covering"): over every human k and every
  region R of G_k, cnt = sum |R| max_{R' in S} IoU(R, R') and total = sum |R|; covering = cnt / total. All
  humans label every pixel, so total = K N and this equals the mean over humans of
  C(S -> G_k) = 1/N sum_{R in G_k} |R| max_{R'} IoU(R, R'). Over a data set the benchmark adds cnt and total
  over images (a pixel-weighted mean; BSDS images all have 154,401 pixels, so it is also the mean over images).
* PRI = mean over humans of the Rand index RI(S, G_k) = 1 - disagreeing pairs / C(N, 2), pairs i < j, which is
  the mean over pixel pairs of c_ij p_ij + (1 - c_ij)(1 - p_ij) with p_ij the fraction of humans putting i, j
  together. Over a data set: the mean over images.
* VoI = mean over humans of H(S | G_k) + H(G_k | S) = H(S) + H(G_k) - 2 I(S, G_k). The benchmark's code takes
  logarithms to base 2 (log2 and log2_quotient in match_segmentations2.m; so does SEISM's voi.hpp), so `base`
  defaults to 2; base=math.e gives nats (VoI in nats = VoI in bits x 0.693). Over a data set: the mean over images.

Labels: every value of S is one region, 0 included: the annotator's label maps use 0 for "not segmented"
(Segmenter.segment_image), and those pixels are taken as one more region (the benchmark's segmentations start
at 1, so it has no such case). A human label 0 means "unlabelled" (BSDS human segmentations have none): such
pixels count in no human region and in no pixel pair, as the benchmark's match_segmentations2.m ignores label 0;
they still count in the area of S's regions for the IoU, as in match_segmentations.m.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def _dense(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, inverse): the distinct labels and each pixel's index into them (flat)."""
    values, inverse = np.unique(np.asarray(labels).ravel(), return_inverse=True)
    return values, inverse.ravel()


def contingency_table(seg: np.ndarray, gt: np.ndarray, _seg_dense: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(table, unlabelled): table[i, j] = pixels with the i-th label of `seg` and the j-th nonzero label of
    `gt` (float64); unlabelled[i] = pixels of seg's i-th label where gt is 0."""
    seg = np.asarray(seg)
    gt = np.asarray(gt)
    if seg.shape != gt.shape:
        raise ValueError(f"segmentation {seg.shape} and human segmentation {gt.shape} differ in size")
    s_values, s_inv = _seg_dense if _seg_dense is not None else _dense(seg)
    g_values, g_inv = _dense(gt)
    ns, ng = len(s_values), len(g_values)
    table = np.bincount(s_inv * ng + g_inv, minlength=ns * ng).reshape(ns, ng).astype(np.float64)
    if ng and g_values[0] == 0:
        return table[:, 1:], table[:, 0]
    return table, np.zeros(ns)


def covering_counts(table: np.ndarray, unlabelled: np.ndarray | None = None) -> tuple[float, float]:
    """(sum over human regions R of |R| max IoU(R, R'), sum of |R|) from one contingency table."""
    if table.size == 0:
        return 0.0, 0.0
    seg_area = table.sum(1) + (0 if unlabelled is None else unlabelled)
    gt_area = table.sum(0)
    iou = table / (seg_area[:, None] + gt_area[None, :] - table)
    return float((gt_area * iou.max(0)).sum()), float(gt_area.sum())


def rand_index_from_table(table: np.ndarray) -> float:
    """Rand index (pairs i < j) from a contingency table; 1.0 when there are fewer than two pixels."""
    n = table.sum()
    if n < 2:
        return 1.0
    disagree = 0.5 * (table.sum(1) ** 2).sum() + 0.5 * (table.sum(0) ** 2).sum() - (table ** 2).sum()
    return float(1.0 - disagree / (n * (n - 1) / 2))


def _entropy(counts: np.ndarray, n: float) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def variation_of_information_from_table(table: np.ndarray, base: float = 2.0) -> float:
    """H(S|G) + H(G|S) from a contingency table, logarithms to `base`."""
    n = table.sum()
    if n == 0:
        return 0.0
    h_joint = _entropy(table.ravel(), n)
    voi = 2 * h_joint - _entropy(table.sum(1), n) - _entropy(table.sum(0), n)
    return max(0.0, voi) / math.log(base)


def region_scores(seg: np.ndarray, humans: Sequence[np.ndarray], base: float = 2.0) -> dict:
    """Covering, PRI and VoI of machine segmentation `seg` against the human segmentations of one image.

    Returns {"covering", "covering_cnt", "covering_total", "pri", "voi", "n_regions", "n_humans"}; add
    covering_cnt and covering_total over images for the benchmark's data-set covering."""
    if len(humans) == 0:
        raise ValueError("at least one human segmentation is needed")
    seg_dense = _dense(seg)
    cnt = total = 0.0
    ris, vois = [], []
    for gt in humans:
        table, unlabelled = contingency_table(seg, gt, seg_dense)
        c, t = covering_counts(table, unlabelled)
        cnt += c
        total += t
        ris.append(rand_index_from_table(table))
        vois.append(variation_of_information_from_table(table, base))
    return {"covering": cnt / total if total else float("nan"), "covering_cnt": cnt, "covering_total": total,
            "pri": float(np.mean(ris)), "voi": float(np.mean(vois)), "n_regions": int(len(seg_dense[0])),
            "n_humans": len(humans)}


def segmentation_covering(seg: np.ndarray, humans: Sequence[np.ndarray]) -> float:
    return region_scores(seg, humans)["covering"]


def probabilistic_rand_index(seg: np.ndarray, humans: Sequence[np.ndarray]) -> float:
    return region_scores(seg, humans)["pri"]


def variation_of_information(seg: np.ndarray, humans: Sequence[np.ndarray], base: float = 2.0) -> float:
    return region_scores(seg, humans, base)["voi"]


def summarize_region_scores(per_image: Sequence[dict]) -> dict:
    """Data-set figures as the benchmark collects them: covering = sum cnt / sum total (pixel-weighted),
    PRI and VoI the mean over images; also the mean of the per-image coverings."""
    if not per_image:
        return {"covering": float("nan"), "covering_image_mean": float("nan"), "pri": float("nan"),
                "voi": float("nan"), "n_images": 0}
    cnt = sum(r["covering_cnt"] for r in per_image)
    total = sum(r["covering_total"] for r in per_image)
    return {"covering": cnt / total if total else float("nan"),
            "covering_image_mean": float(np.mean([r["covering"] for r in per_image])),
            "pri": float(np.mean([r["pri"] for r in per_image])),
            "voi": float(np.mean([r["voi"] for r in per_image])),
            "n_regions_mean": float(np.mean([r["n_regions"] for r in per_image])),
            "n_images": len(per_image)}


def pq_from_counts(iou_sum: float, tp: int, fp: int, fn: int) -> dict:
    """PQ, SQ, RQ from matched-IoU sum and counts (COCO definition); nan where nothing to count."""
    denom = tp + 0.5 * fp + 0.5 * fn
    if denom == 0:
        return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan")}
    sq = iou_sum / tp if tp else 0.0
    rq = tp / denom
    return {"pq": iou_sum / denom, "sq": sq, "rq": rq}


def panoptic_quality(pred_labels: np.ndarray, gt_segments: Sequence[np.ndarray], ignore: np.ndarray) -> dict:
    """Class-agnostic panoptic quality of one image, as in COCO's pq_compute with a single category.

    pred_labels: HxW int, 0 = unassigned, k > 0 = predicted segment k. gt_segments: disjoint HxW bool masks.
    ignore: HxW bool void pixels: they count in no union, and a predicted segment more than half void is no FP.
    A match is a (gt, pred) pair with IoU > 0.5 (unique by construction). Also returns each ground-truth
    segment's best IoU with any predicted segment.
    """
    h, w = ignore.shape
    n_gt = len(gt_segments)
    void_id = n_gt + 1
    gt = np.zeros((h, w), np.int64)
    for k, m in enumerate(gt_segments, 1):
        gt[m & ~ignore] = k
    gt[ignore] = void_id
    pred_ids, pred_inv = np.unique(pred_labels, return_inverse=True)
    pred_inv = pred_inv.reshape(h, w)
    n_pred_all = len(pred_ids)
    # Joint histogram: inter[g, p] = pixels with gt id g and the p-th predicted id.
    inter = np.bincount((gt * n_pred_all + pred_inv).ravel(), minlength=(n_gt + 2) * n_pred_all)
    inter = inter.reshape(n_gt + 2, n_pred_all).astype(np.float64)
    gt_area = inter[1:n_gt + 1].sum(1)  # each gt segment's area (void excluded), unassigned pixels included
    keep = pred_ids > 0
    inter = inter[:, keep]
    pred_area = inter.sum(0)
    void_in_pred = inter[void_id]
    gi = inter[1:n_gt + 1]              # n_gt x n_pred
    union = gt_area[:, None] + pred_area[None, :] - gi - void_in_pred[None, :]
    iou = np.where(union > 0, gi / np.maximum(union, 1), 0.0)
    matched = iou > 0.5
    tp = int(matched.sum())
    iou_sum = float(iou[matched].sum())
    fn = int(n_gt - matched.any(1).sum())
    pred_matched = matched.any(0)
    mostly_void = void_in_pred > 0.5 * pred_area
    fp = int((~pred_matched & ~mostly_void).sum())
    best = iou.max(1) if iou.shape[1] else np.zeros(n_gt)
    out = {"tp": tp, "fp": fp, "fn": fn, "iou_sum": iou_sum, "n_pred": int(keep.sum()), "n_gt": n_gt,
           "best_ious": [float(b) for b in best],
           "mean_best_iou": float(best.mean()) if n_gt else float("nan")}
    out.update(pq_from_counts(iou_sum, tp, fp, fn))
    return out
