"""Evaluation of the net (and optionally OpenCV GrabCut as a peer) on labelled data.

    python -m train.evaluate MODE --data SPEC [--weights PATH | --random-init] [--peer grabcut] [--limit N]
                             [--json OUT.json] [--max-clicks 20] [--threads 2] [--seed 0]

SPEC is a data source as the trainer names them: `masks:DIR` (DIR/images + DIR/masks, 0 / 255, 128 = ignore;
GrabCut, COCO-MVal), `semantic:DIR` (CamVid-style class maps), `coco:JSON` (COCO panoptic), `synthetic:N`.

Modes:
  single  the seed's single-segment evaluation: one random pointer inside each ground-truth segment (seeded),
          mean IoU of the predicted segment.
  clicks  the standard interactive protocol (RITM / f-BRS): first click at the interior-most point of the
          object, each next click at the interior-most point of the larger error region (missed -> positive,
          wrong -> negative), up to --max-clicks; NoC@85, NoC@90, IoU@1, failures, mean IoU per click count.
  full    the seed's full-image sequential segmentation (Segmenter.segment_image) against full label maps:
          class-agnostic panoptic quality (PQ, SQ, RQ) and mean best IoU per ground-truth segment.

Ignore pixels (mask value 128, void, crowd) count in no metric and attract no click. On label-map data the
`single` and `clicks` modes run per segment: up to --max-segments-per-image segments of at least 1% of the
image, largest first. Every method gets its clicks from its own errors, in the same run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .region_eval import eval_full_regions, format_regions, human_scenes, region_report
from .region_metrics import panoptic_quality, pq_from_counts  # noqa: F401 (imported from here by benches and tests)
from .sample import DataError, Sample
from .sampling import next_click

MODES = ("single", "clicks", "full")
THRESHOLDS = (0.85, 0.90)


# ---------------------------------------------------------------- metrics

def mask_iou(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> float:
    """IoU of two HxW bool masks over the `valid` pixels; 1.0 when both are empty there."""
    if valid is not None:
        pred, target = pred & valid, target & valid
    union = int(np.count_nonzero(pred | target))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & target)) / union


def number_of_clicks(ious: Sequence[float], threshold: float, max_clicks: int) -> int:
    """NoC: the first click count (1-based) whose IoU reaches `threshold`; `max_clicks` if none does."""
    for k, v in enumerate(ious[:max_clicks], 1):
        if v >= threshold:
            return k
    return max_clicks


# ---------------------------------------------------------------- methods

class NetMethod:
    """The net through the public Segmenter API, as the annotator calls it."""

    name = "net"

    def __init__(self, segmenter, full_options: dict | None = None):
        self.segmenter = segmenter
        self.full_options = dict(full_options or {})  # segment_image keyword arguments (full mode)
        self.first_readings: tuple = ()

    def predict(self, image: np.ndarray, clicks: Sequence[tuple]) -> np.ndarray:
        # roi=None: the whole image, as the benchmark protocol has it. The Segmenter caches the chain, so the
        # growing click list costs one net run per new click.
        pred = self.segmenter.predict(image, list(clicks), roi=None)
        if len(clicks) == 1:
            self.first_readings = pred.readings  # what Tab shows the person after the first click
        return pred.mask

    def segment_image(self, image: np.ndarray) -> np.ndarray:
        return self.segmenter.segment_image(image, **self.full_options)


def _net_full_image_default(name: str) -> float:
    import inspect

    from model.segmenter import Segmenter

    return float(inspect.signature(Segmenter.segment_image).parameters[name].default)


def _net_min_area_fraction() -> float:
    return _net_full_image_default("min_area_fraction")



class GrabCutMethod:
    """A GrabCut driver of train.peers (`variant`: "grabcut" chained, "grabcut-fresh") with the evaluator's
    method interface."""

    def __init__(self, full_image_side: int = 320, variant: str = "grabcut", min_area_fraction: float | None = None,
                 miss_disk_fraction: float | None = None):
        from .peers import PEERS

        self.peer = PEERS[variant]()
        self.name = variant
        self.full_image_side = full_image_side
        # Full-image mode: by default the smallest segment kept is the net's (same protocol for both).
        self.min_area_fraction = _net_min_area_fraction() if min_area_fraction is None else min_area_fraction
        # ... and so is the pointer rule after a miss, unless set (--peer-miss-disk).
        self.miss_disk_fraction = (_net_full_image_default("miss_disk_fraction") if miss_disk_fraction is None
                                   else miss_disk_fraction)

    def predict(self, image: np.ndarray, clicks: Sequence[tuple]) -> np.ndarray:
        return self.peer.predict(image, list(clicks), roi=None)

    def segment_image(self, image: np.ndarray) -> np.ndarray:
        return self.peer.segment_image(image, side=self.full_image_side, min_area_fraction=self.min_area_fraction,
                                       miss_disk_fraction=self.miss_disk_fraction)


# ---------------------------------------------------------------- protocol

def run_click_protocol(predict: Callable[[np.ndarray, list], np.ndarray], image: np.ndarray, target: np.ndarray,
                       valid: np.ndarray, max_clicks: int, stop_at: float | None = None) -> dict:
    """The standard click protocol for one object and one method: each click from the method's own errors
    (train.sampling.next_click), IoU over valid pixels after every click. If a mask is perfect, later click
    counts keep its IoU (there is nothing left to click). `stop_at`: stop once the IoU reaches it (NoC at that
    threshold and below, IoU@1 and "left below it" are unchanged; the IoU curve then ends there)."""
    clicks: list[tuple[int, int, bool]] = []
    ious: list[float] = []
    seconds: list[float] = []
    pred = np.zeros_like(target, dtype=bool)
    for k in range(max_clicks):
        click = next_click(pred, target, valid)
        if click is None:
            ious.extend([ious[-1] if ious else 1.0] * (max_clicks - k))
            break
        clicks.append(click)
        t0 = time.perf_counter()
        pred = np.asarray(predict(image, list(clicks)), bool)
        seconds.append(time.perf_counter() - t0)
        ious.append(mask_iou(pred, target, valid))
        if stop_at is not None and ious[-1] >= stop_at:
            break
    out = {"clicks": [list(c) for c in clicks], "ious": ious, "seconds": seconds,
           "first_negative_gain": first_negative_gain(clicks, ious)}
    for thr in THRESHOLDS:
        out[f"noc{round(thr * 100)}"] = number_of_clicks(ious, thr, max_clicks)
    return out


def first_negative_gain(clicks: Sequence[tuple], ious: Sequence[float]) -> float | None:
    """IoU after the chain's first negative click minus IoU before it; None if the chain has none. Says whether
    a negative click removes the wrong region (a large gain) or only a click-sized notch (a gain near 0)."""
    for k, c in enumerate(clicks):
        if not c[2] and k > 0:
            return float(ious[k] - ious[k - 1])
    return None


def select_segments(sample: Sample, fully_labelled: bool, max_segments: int, min_fraction: float = 0.01
                    ) -> list[int]:
    """Indices of the segments to evaluate: every object of a one-object-per-file data set; on label maps up
    to `max_segments` segments of at least `min_fraction` of the image (ignore pixels not counted), largest
    first."""
    valid = ~sample.ignore
    areas = [int(np.count_nonzero(m & valid)) for m in sample.segments]
    if not fully_labelled:
        return [k for k, a in enumerate(areas) if a > 0]
    min_area = min_fraction * sample.ignore.size
    order = sorted((k for k, a in enumerate(areas) if a >= min_area and a > 0), key=lambda k: -areas[k])
    return order[:max_segments]


# ---------------------------------------------------------------- modes

def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def upscale_sample(sample: Sample, factor: float) -> Sample:
    """The sample scaled by `factor`: the image bicubic, every segment and the ignore mask nearest, so the
    segments stay disjoint."""
    h, w = sample.image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))

    def nearest(m: np.ndarray) -> np.ndarray:
        return cv2.resize(m.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)

    interp = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
    return dataclasses.replace(sample, image=cv2.resize(sample.image, size, interpolation=interp),
                               segments=[nearest(m) for m in sample.segments], ignore=nearest(sample.ignore))


def eval_single(sample: Sample, fully_labelled: bool, methods: list, rng: np.random.Generator, args) -> dict:
    """One random pointer inside each selected segment; every method gets the same pointer."""
    valid = ~sample.ignore
    objects = []
    for k in select_segments(sample, fully_labelled, args.max_segments_per_image):
        target = sample.segments[k]
        ys, xs = np.nonzero(target & valid)
        j = int(rng.integers(len(xs)))
        click = (int(xs[j]), int(ys[j]), True)
        rec = {"segment": k, "area": int(len(xs)), "click": list(click)}
        for m in methods:
            t0 = time.perf_counter()
            pred = np.asarray(m.predict(sample.image, [click]), bool)
            rec[m.name] = {"iou": mask_iou(pred, target, valid), "seconds": time.perf_counter() - t0}
        objects.append(rec)
    return {"objects": objects}


def eval_clicks(sample: Sample, fully_labelled: bool, methods: list, rng: np.random.Generator, args) -> dict:
    valid = ~sample.ignore
    objects = []
    for k in select_segments(sample, fully_labelled, args.max_segments_per_image):
        target = sample.segments[k]
        rec = {"segment": k, "area": int(np.count_nonzero(target & valid))}
        for m in methods:
            rec[m.name] = run_click_protocol(m.predict, sample.image, target, valid, args.max_clicks)
            if getattr(m, "first_readings", None):
                # The first click's other readings (Tab in the annotator): their IoUs, the default first.
                rec[m.name]["reading_ious"] = [mask_iou(r, target, valid) for r in m.first_readings]
                m.first_readings = ()
        objects.append(rec)
    return {"objects": objects}


def eval_full(sample: Sample, fully_labelled: bool, methods: list, rng: np.random.Generator, args) -> dict:
    rec = {"n_gt": len(sample.segments)}
    for m in methods:
        t0 = time.perf_counter()
        labels = m.segment_image(sample.image)
        seconds = time.perf_counter() - t0
        r = panoptic_quality(labels, sample.segments, sample.ignore)
        r["seconds"] = seconds
        rec[m.name] = r
    return rec


def summarize(mode: str, per_image: list[dict], names: list[str], max_clicks: int) -> dict:
    """Per-method summary numbers over all evaluated images."""
    out = {}
    for name in names:
        if mode == "full":
            recs = [im[name] for im in per_image]
            tp, fp, fn = (sum(r[k] for r in recs) for k in ("tp", "fp", "fn"))
            iou_sum = sum(r["iou_sum"] for r in recs)
            s = pq_from_counts(iou_sum, tp, fp, fn)  # dataset-level, as COCO accumulates over images
            s.update({"tp": tp, "fp": fp, "fn": fn,
                      "mean_best_iou": _mean([b for r in recs for b in r["best_ious"]]),
                      "mean_image_pq": _mean([r["pq"] for r in recs]),
                      "seconds_per_image": _mean([r["seconds"] for r in recs]),
                      "n_images": len(recs)})
            out[name] = s
            continue
        objs = [o[name] for im in per_image for o in im["objects"]]
        per_image_seconds = [sum(o[name]["seconds"] if mode == "single" else sum(o[name]["seconds"])
                                 for o in im["objects"]) for im in per_image if im["objects"]]
        if mode == "single":
            secs = [o["seconds"] for o in objs]
            out[name] = {"miou": _mean([o["iou"] for o in objs]), "n_objects": len(objs),
                         "seconds_per_click": _mean(secs), "seconds_per_image": _mean(per_image_seconds)}
            continue
        curves = np.array([o["ious"] for o in objs], np.float64).reshape(len(objs), max_clicks)
        secs = [s for o in objs for s in o["seconds"]]
        s = {"n_objects": len(objs),
             "noc85": _mean([o["noc85"] for o in objs]),
             "noc90": _mean([o["noc90"] for o in objs]),
             "iou_at_1": float(curves[:, 0].mean()) if len(objs) else float("nan"),
             "fails_at_85": int(sum(max(o["ious"]) < 0.85 for o in objs)),
             "fails_at_90": int(sum(max(o["ious"]) < 0.90 for o in objs)),
             "miou_per_click": [float(v) for v in curves.mean(0)] if len(objs) else [],
             "neg_gain": _mean([o.get("first_negative_gain") for o in objs]),
             # IoU after one click when the person may also pick another reading of it (Tab): the best one.
             "iou_at_1_best_reading": _mean([max(o["reading_ious"]) if o.get("reading_ious") else None
                                             for o in objs]),
             "readings_per_click": _mean([len(o["reading_ious"]) if o.get("reading_ious") else None
                                          for o in objs]),
             "n_negative_chains": int(sum(o.get("first_negative_gain") is not None for o in objs)),
             "seconds_per_click": _mean(secs),
             "n_clicks": len(secs),
             "seconds_per_image": _mean(per_image_seconds)}
        out[name] = s
    return out


# ---------------------------------------------------------------- report

COLUMNS = {
    "single": [("mIoU", "miou", "{:.3f}"), ("s/click", "seconds_per_click", "{:.3f}"),
               ("s/image", "seconds_per_image", "{:.2f}")],
    "clicks": [("NoC@85", "noc85", "{:.2f}"), ("NoC@90", "noc90", "{:.2f}"), ("IoU@1", "iou_at_1", "{:.3f}"),
               ("IoU@1+Tab", "iou_at_1_best_reading", "{:.3f}"),
               ("fails@90", "fails_at_90", "{:d}"), ("negGain", "neg_gain", "{:+.3f}"),
               ("s/click", "seconds_per_click", "{:.3f}"),
               ("s/image", "seconds_per_image", "{:.2f}")],
    "full": [("PQ", "pq", "{:.3f}"), ("SQ", "sq", "{:.3f}"), ("RQ", "rq", "{:.3f}"),
             ("mBestIoU", "mean_best_iou", "{:.3f}"), ("TP", "tp", "{:d}"), ("FP", "fp", "{:d}"),
             ("FN", "fn", "{:d}"), ("s/image", "seconds_per_image", "{:.2f}")],
}


def _fmt(fmt: str, v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    return fmt.format(v)


def stronger_peer(summary: dict, mode: str, peers: Sequence[str]) -> str | None:
    """The peer to compare with: fewest NoC@90 (clicks), highest PQ (full), highest mIoU (single)."""
    present = [p for p in peers if p in summary]
    if not present:
        return None
    key, sign = {"clicks": ("noc90", 1), "full": ("pq", -1), "single": ("miou", -1)}[mode]

    def rank(p):
        v = summary[p].get(key)
        return float("inf") if v is None or np.isnan(float(v)) else sign * float(v)

    return min(present, key=rank)


def ratios(summary: dict, mode: str, net: str = "net", peer: str | None = None) -> dict:
    """net / peer for every table column (lower is better for NoC, fails, seconds; higher for IoU, PQ)."""
    if peer is None or peer not in summary or net not in summary:
        return {}
    out = {}
    for _, key, _ in COLUMNS[mode]:
        if key in ("tp", "fp", "fn"):
            continue  # counts: a ratio says nothing
        a, b = summary[net].get(key), summary[peer].get(key)
        ok = a is not None and b is not None and not np.isnan(float(a)) and not np.isnan(float(b)) and b != 0
        out[key] = float(a) / float(b) if ok else None
    return out


def format_table(result: dict) -> str:
    mode = result["mode"]
    cols = COLUMNS[mode]
    lines = [f"mode {mode}  data {result['data']['spec']}  images {result['n_images']}"
             + (f"  objects {result['n_objects']}" if mode != "full" else "")
             + (f"  skipped {len(result['skipped'])}" if result["skipped"] else "")
             + f"  weights {result['weights']['name']}"]
    header = f"{'method':<22}" + "".join(f"{c[0]:>10}" for c in cols)
    lines.append(header)
    for name, s in result["methods"].items():
        lines.append(f"{name:<22}" + "".join(f"{_fmt(fmt, s.get(key)):>10}" for _, key, fmt in cols))
    if result.get("peer_note"):
        lines.append(result["peer_note"])
    if result["ratio"]:
        name = f"ratio(net/{result.get('stronger_peer') or result['settings']['peer']})"
        lines.append(f"{name:<22}" + "".join(
            f"{_fmt('{:.2f}', result['ratio'].get(key)) if key in result['ratio'] else '':>10}"
            for _, key, _ in cols))
    if mode == "clicks":
        mc = result["settings"]["max_clicks"]
        ks = sorted({k for k in (1, 2, 3, 5, 10, 15, 20) if k <= mc} | {mc})
        lines.append("mean IoU after k clicks: " + "  ".join(f"k={k}" for k in ks))
        for name, s in result["methods"].items():
            curve = s["miou_per_click"]
            lines.append(f"  {name:<20}" + "  ".join(_fmt("{:.3f}", curve[k - 1] if curve else None) for k in ks))
    return "\n".join(lines)


# ---------------------------------------------------------------- setup

def parse_segmenter_options(items: Sequence[str]) -> dict:
    """["KEY=VALUE", ...] -> {KEY: VALUE}, each value read as JSON, else kept as a string."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--segmenter-option takes KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def load_segmenter(weights: str | None, random_init: bool, seed: int = 0, device: str | None = None,
                   backend: str | None = None, options: dict | None = None):
    """(Segmenter, description for the report). weights: a .safetensors file (default: the bundled one) or a
    trainer checkpoint .pt (its "net" state), so a run in progress can be measured. backend: the inference
    runtime (model.runtime: auto, openvino, onnx, torch; None: $POINTER_ANNOTATOR_BACKEND, else auto). options:
    more Segmenter keyword arguments."""
    from model import Segmenter, WeightsError
    from model.segmenter import BUNDLED_WEIGHTS

    from .files import sha256_file

    if random_init:
        return Segmenter.random_init(seed=seed, device=device or "cpu", backend=backend, **(options or {})), {"name": f"random-init(seed={seed})",
                                                                           "path": None, "random_init": True}
    path = Path(weights) if weights else BUNDLED_WEIGHTS
    if path.suffix == ".pt":
        import torch

        from model.net import PointerSegNet
        from model.weights import backbone_of_state

        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
            state = ckpt["net"] if isinstance(ckpt, dict) and "net" in ckpt else ckpt
            net = PointerSegNet(pretrained_backbone=False, backbone=backbone_of_state(state))
            net.load_state_dict(state)
        except Exception as exc:  # torch raises many kinds for bad files; all mean "not usable weights"
            raise WeightsError(f"checkpoint {path} is not usable net weights ({exc})") from exc
        step = ckpt.get("step") if isinstance(ckpt, dict) else None
        seg = Segmenter(net, device or "cpu", info={"checkpoint": str(path), "step": step}, backend=backend,
                        **(options or {}))
    else:
        seg = Segmenter.from_pretrained(path, device=device, backend=backend, **(options or {}))
    return seg, {"name": str(path), "path": str(path.resolve()), "random_init": False, "runtime": seg.runtime,
                 "sha256": sha256_file(path), "info": seg.info}


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(result: dict, path: str | Path) -> None:
    """Atomic write (temp file + rename), so an interrupted run leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=MODES)
    p.add_argument("--data", required=True, help="masks:DIR | semantic:DIR | coco:JSON | bsds:DIR | synthetic:N")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weights", help="net weights (.safetensors, or a trainer checkpoint .pt); "
                                     "default: the bundled weights")
    g.add_argument("--random-init", action="store_true", help="an untrained net (tests, plumbing)")
    p.add_argument("--peer", choices=["grabcut"], help="run a peer method on the same images and protocol")
    p.add_argument("--miss-disk", type=float,
                   help="full mode: the net's pointer rule after a miss, Segmenter.segment_image's "
                        "miss_disk_fraction (default: its default)")
    p.add_argument("--max-misses", choices=["none"] + [str(k) for k in range(1, 51)], metavar="N|none",
                   help="full mode: the net's stop after this many misses in a row, Segmenter.segment_image's "
                        "max_misses_in_a_row ('none': no limit; default: its default)")
    p.add_argument("--refine-passes", type=int, choices=range(0, 11), metavar="N",
                   help="full mode: how often each segment's answer goes back to the net as the previous mask, "
                        "Segmenter.segment_image's refine_passes (default: its default)")
    p.add_argument("--peer-miss-disk", type=float,
                   help="full mode: the peers' pointer rule after a miss (default: the net's, "
                        "Segmenter.segment_image's miss_disk_fraction; 1.0 was the peers' stronger setting on CamVid val)")
    p.add_argument("--peer-min-area", type=float,
                   help="full mode: the smallest segment the peer keeps, as a fraction of the image (default: the "
                        "net's, Segmenter.segment_image's min_area_fraction)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--no-felzenszwalb", action="store_true",
                   help="full mode on a source with several people's segmentations (bsds:): skip the "
                        "Felzenszwalb sweep reported beside the net")
    p.add_argument("--upscale", type=float, default=1.0,
                   help="scale every image (bicubic) and its labels (nearest) by this factor first, to measure at "
                        "the resolution of camera photos (the benchmark sets are about 0.3 MP)")
    p.add_argument("--held-out", action="store_true",
                   help="only the files the trainer holds out of this source for validation (its stable split by "
                        "file name), so data a run trained on can still measure it")
    p.add_argument("--split", choices=["val"],
                   help="only the source's files in the fixed validation split (train/val_split.json), the split "
                        "every choice on the net is made on")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--max-clicks", type=int, default=20)
    p.add_argument("--max-segments-per-image", type=int, default=10,
                   help="label-map data, single/clicks modes: segments per image (largest first, >= 1%% area)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and OpenCV")
    p.add_argument("--seed", type=int, default=0, help="random pointers (single mode) and random init")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--backend", default=None, choices=["auto", "openvino", "onnx", "torch"],
                   help="inference runtime for the net (default: $POINTER_ANNOTATOR_BACKEND, else auto: the "
                        "fastest that reproduces PyTorch)")
    p.add_argument("--quiet", action="store_true", help="no per-image progress lines")
    p.add_argument("--segmenter-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Segmenter keyword argument, e.g. max_side=512 or flip_average=true (repeatable; the "
                        "value is read as JSON, else as a string)")
    a = p.parse_args(argv)
    if a.max_clicks < 1:
        p.error("--max-clicks must be at least 1")
    try:
        a.segmenter_options = parse_segmenter_options(a.segmenter_option)
    except ValueError as exc:
        p.error(str(exc))
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be at least 1")
    if not 0.05 <= a.upscale <= 16:
        p.error("--upscale must be between 0.05 and 16")
    return a


def evaluate(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    """Run one evaluation as described by parsed `args`; returns the result dict (as written to JSON)."""
    import torch

    from .trainer import TrainConfig, open_source
    from model import WeightsError

    torch.set_num_threads(max(1, args.threads))
    cv2.setNumThreads(max(1, args.threads))
    try:
        reader, _, fully_labelled = open_source(args.data)
    except DataError:
        raise
    except ValueError as exc:  # unknown kind or malformed spec
        raise DataError(str(exc)) from None
    if args.held_out:
        reader = held_out_subset(reader, None, TrainConfig.val_fraction)
        if len(reader) == 0:
            raise DataError(f"{args.data}: no file falls in the trainer's held-out split")
    if getattr(args, "split", None) == "val":
        from .splits import held_out_names

        reader = held_out_subset(reader, held_out_names())
        if len(reader) == 0:
            raise DataError(f"{args.data}: no file of this source is in the validation split (train/val_split.json)")
    if args.mode == "full" and not fully_labelled:
        raise DataError(f"{args.data}: 'full' mode needs full label maps (semantic:, coco: or synthetic: data); "
                        "a masks: folder labels one object per image")
    try:
        segmenter, weights_desc = load_segmenter(args.weights, args.random_init, args.seed, args.device,
                                                 args.backend, args.segmenter_options)
    except (TypeError, ValueError) as exc:
        if not args.segmenter_options or isinstance(exc, WeightsError):
            raise
        raise DataError(f"--segmenter-option {args.segmenter_options}: {exc}") from exc
    full_options = {}
    if getattr(args, "miss_disk", None) is not None:
        full_options["miss_disk_fraction"] = args.miss_disk
    if getattr(args, "max_misses", None) is not None:
        full_options["max_misses_in_a_row"] = None if args.max_misses == "none" else int(args.max_misses)
    if getattr(args, "refine_passes", None) is not None:
        full_options["refine_passes"] = args.refine_passes
    methods: list = [NetMethod(segmenter, full_options or None)]
    peer_note = None
    peers: list[str] = []
    if args.peer == "grabcut":
        # Both ways of driving GrabCut with clicks; the net is compared with the stronger of the two.
        peers = ["grabcut", "grabcut-fresh"]
        methods += [GrabCutMethod(segmenter.full_image_side, variant, args.peer_min_area, args.peer_miss_disk)
                    for variant in peers]
        peer_note = ("grabcut: chained state, square seed at the first click; grabcut-fresh: afresh per click, "
                     "40 px probable-foreground disks at positive clicks (train/peers.py)")
        if args.mode == "full":
            peer_note += (f"; both as sequential GrabCut from interior-most points at long side "
                          f"{segmenter.full_image_side}, as the net's segment_image, keeping segments of at least "
                          f"{methods[-1].min_area_fraction:g} of the image, clearing {methods[-1].miss_disk_fraction:g} "
                          f"of a missed pointer's inscribed disk")
    names = [m.name for m in methods]
    run = {"single": eval_single, "clicks": eval_clicks, "full": eval_full}[args.mode]
    # A source with several people's segmentations per image (BSDS) is measured per image against all of them.
    scenes = human_scenes(reader) if args.mode == "full" else None
    if scenes is not None:
        if args.upscale != 1.0:
            raise DataError(f"{args.data}: --upscale is for one label map per image, not for several people's")
        reader, run = scenes, partial(eval_full_regions, min_area=scenes.min_area)
    rng = np.random.default_rng(args.seed)
    n = len(reader) if args.limit is None else min(args.limit, len(reader))
    per_image, skipped = [], []
    t_start = time.perf_counter()
    for i in range(n):
        try:
            sample = reader[i]
        except DataError as exc:
            # A bad file is reported and left out; the run goes on and the JSON lists it.
            skipped.append({"index": i, "error": str(exc)})
            print(f"skipping image {i}: {exc}", file=sys.stderr)
            continue
        if args.upscale != 1.0:
            sample = upscale_sample(sample, args.upscale)
        rec = {"name": sample.name, "size": [int(sample.image.shape[1]), int(sample.image.shape[0])]}
        rec.update(run(sample, fully_labelled, methods, rng, args))
        per_image.append(rec)
        if not args.quiet:
            print(f"[{i + 1}/{n}] {sample.name}  " + _progress(args.mode, rec, names), file=sys.stderr, flush=True)
    summary = summarize(args.mode, per_image, names, args.max_clicks)
    strongest = stronger_peer(summary, args.mode, peers)
    regions = None
    if scenes is not None:
        regions = region_report(per_image, names, scenes, len(per_image),
                                with_felzenszwalb=not getattr(args, "no_felzenszwalb", False), quiet=args.quiet)
    return {
        "mode": args.mode,
        "command": " ".join(shlex.quote(a) for a in (["python", "-m", "train.evaluate"] + list(argv or []))),
        "weights": weights_desc,
        "data": {"spec": args.data, "fully_labelled": fully_labelled, "images_in_source": len(reader)},
        "settings": {"segmenter_options": args.segmenter_options, "max_clicks": args.max_clicks, "max_segments_per_image": args.max_segments_per_image,
                     "min_segment_fraction": 0.01, "thresholds": list(THRESHOLDS), "threads": args.threads,
                     "seed": args.seed, "limit": args.limit, "upscale": args.upscale,
                     "held_out": args.held_out, "split": getattr(args, "split", None), "peer": args.peer, "device": segmenter.device,
                     "net_full_options": methods[0].full_options,
                     "peer_min_area_fraction": methods[-1].min_area_fraction if peers else None,
                     "peer_miss_disk_fraction": methods[-1].miss_disk_fraction if peers else None},
        "n_images": len(per_image),
        "n_objects": sum(len(im.get("objects", [])) for im in per_image),
        "skipped": skipped,
        "methods": summary,
        "stronger_peer": strongest,
        "ratio": ratios(summary, args.mode, "net", strongest),
        "peer_note": peer_note,
        "regions": regions,
        "seconds_total": time.perf_counter() - t_start,
        "per_image": per_image,
    }


def held_out_subset(reader, exclude: set[str] | None, fraction: float = 0.0):
    """The items of `reader` the trainer holds out: those named in `exclude` (the fixed validation split), else
    its hash split at `fraction`; by image for readers with several items per image (BSDS's people)."""
    from .trainer import _held_out, _Subset

    return _Subset(reader, [i for i, v in enumerate(_held_out(reader, exclude, fraction)) if v])


def _progress(mode: str, rec: dict, names: list[str]) -> str:
    parts = []
    for name in names:
        if mode == "full":
            r = rec[name]
            parts.append(f"{name} PQ {_fmt('{:.3f}', r['pq'])} ({r['n_pred']} segs, {r['seconds']:.1f}s)")
        elif mode == "single":
            parts.append(f"{name} mIoU {_fmt('{:.3f}', _mean([o[name]['iou'] for o in rec['objects']]))}")
        else:
            objs = [o[name] for o in rec["objects"]]
            parts.append(f"{name} NoC90 {_fmt('{:.1f}', _mean([o['noc90'] for o in objs]))} "
                         f"IoU@1 {_fmt('{:.3f}', _mean([o['ious'][0] for o in objs]))}")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from model import WeightsError

    try:
        result = evaluate(args, argv)
    except (DataError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    if result.get("regions"):
        print(format_regions(result["regions"]))
    if args.json:
        write_json(result, args.json)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
