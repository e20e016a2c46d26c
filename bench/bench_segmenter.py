"""Speed and memory of the Segmenter on the CPU, beside OpenCV GrabCut on the same clicks.

    python bench/bench_segmenter.py [--weights PATH | --random-init] [--images 20] [--clicks 10] [--threads 2]
                                    [--json OUT.json] [--large 4000x3000] [--no-peer] [--no-peer-full]
                                    [--runtimes all | NAME,NAME...]

* click-to-mask latency (p50, p90, after warm-up) on real 640x480 images (COCO-MVal objects resized and
  cropped from ../shared/data; CamVid when that is missing; synthetic scenes when neither is there). Each image
  gets a chain of --clicks clicks placed by the standard protocol from the net's own errors
  (train.sampling.next_click); GrabCut (train.peers.GrabCutPeer) gets exactly the same clicks.
* `segment_image` time per 640x480 image (and the sequential GrabCut peer's, unless --no-peer-full).
* a --large image (default 4000x3000, an upscaled real image): click latency and memory, measured in fresh
  processes for 640x480 and for the large size: peak RSS growth during the clicks and the peak of numpy
  allocations (tracemalloc), to show that memory inside the net does not grow with megapixels (the net always
  runs at a bounded internal size; only full-resolution masks grow).
* --runtimes: the same weights run by each candidate runtime (bench/runtime_candidates.py: eager PyTorch,
  channels-last, TorchScript frozen, ONNX Runtime fp32 and int8, OpenVINO) on the same click chains (placed by
  eager PyTorch's errors) and images: click p50 / p90, first click, `segment_image` s/image, load time, and the
  masks' mean IoU against eager PyTorch; then the runtime the Segmenter picks by default.
"""
from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SIZE = (640, 480)  # w, h


# ---------------------------------------------------------------- images

def _cover_crop(a: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    """Resize so the array covers w x h, then crop the centre."""
    w, h = size
    s = max(w / a.shape[1], h / a.shape[0])
    nw, nh = max(w, round(a.shape[1] * s)), max(h, round(a.shape[0] * s))
    r = cv2.resize(a, (nw, nh), interpolation=interp)
    x0, y0 = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(r[y0:y0 + h, x0:x0 + w])


def load_images(n: int, synthetic: bool = False) -> tuple[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], str]:
    """n (name, 640x480 RGB image, target mask, valid mask) and the source's name."""
    from train.readers import FolderMaskReader, SemanticLabelReader
    from train.sample import DataError

    def pick(reader, fully):
        out = []
        step = max(1, len(reader) // max(1, n))
        for i in range(0, len(reader), step):
            try:
                s = reader[i]
            except DataError as exc:
                print(f"skipping: {exc}", file=sys.stderr)
                continue
            if not s.segments:
                continue
            areas = [m.sum() for m in s.segments]
            target = s.segments[int(np.argmax(areas))] if fully else s.segments[0]
            img = _cover_crop(s.image, SIZE, cv2.INTER_AREA if s.image.shape[1] > SIZE[0] else cv2.INTER_LINEAR)
            tgt = _cover_crop(target.astype(np.uint8), SIZE, cv2.INTER_NEAREST).astype(bool)
            valid = ~_cover_crop(s.ignore.astype(np.uint8), SIZE, cv2.INTER_NEAREST).astype(bool)
            if tgt.sum() >= 100:
                out.append((s.name, img, tgt, valid))
            if len(out) == n:
                break
        return out

    if not synthetic:
        for kind, path in (("coco_mval_train", DATA / "coco_mval_train"), ("camvid/val", DATA / "camvid" / "val")):
            if path.is_dir():
                reader = FolderMaskReader(path) if kind.startswith("coco") else SemanticLabelReader(path)
                images = pick(reader, not kind.startswith("coco"))
                if images:
                    return images, kind
    from train.synthetic import make_scene

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image, labels, _ = make_scene(rng, (SIZE[1], SIZE[0]))
        areas = np.bincount(labels[labels >= 0].ravel())
        out.append((f"synthetic_{i}", image, labels == int(np.argmax(areas)), labels >= 0))
    return out, "synthetic"


# ---------------------------------------------------------------- measurement helpers

def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "mean": float("nan"), "n": 0}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "mean": float(a.mean()),
            "n": int(a.size)}


def click_chain(seg, image: np.ndarray, target: np.ndarray, valid: np.ndarray, n_clicks: int,
                previews: list | None = None) -> tuple[list[tuple[int, int, bool]], list[float]]:
    """The net's clicks by the standard protocol, with the time of each predict call. `previews` (if given)
    gets the time from the first click to its preview: what the annotator shows while the refinements run."""
    from train.sampling import next_click

    clicks, times = [], []
    pred = np.zeros_like(target)
    for _ in range(n_clicks):
        c = next_click(pred, target, valid)
        if c is None:
            break
        clicks.append(c)
        t0 = time.perf_counter()
        seen: list = []
        pred = seg.predict(image, clicks, preview=lambda m, s: seen.append(time.perf_counter() - t0)).mask
        times.append(time.perf_counter() - t0)
        if previews is not None and len(clicks) == 1 and seen:
            previews.append(seen[0])
    return clicks, times


def peer_chain(peer, image: np.ndarray, clicks: list) -> list[float]:
    """GrabCut on the same click sequence (state kept along the chain)."""
    times = []
    for k in range(1, len(clicks) + 1):
        t0 = time.perf_counter()
        peer.predict(image, clicks[:k])
        times.append(time.perf_counter() - t0)
    return times


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_probe(args) -> dict:
    """Run in a fresh process: clicks on one image of --probe-size; RSS growth and numpy peak during them."""
    import tracemalloc

    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    seg, _ = _segmenter(args)
    w, h = (int(v) for v in args.probe_size.lower().split("x"))
    images, _ = load_images(1, args.synthetic)
    _, small, target, valid = images[0]
    # Warm up on a small image so one-time allocations (weights, thread pools) are not counted as growth.
    seg.predict(small, [(320, 240, True)])
    seg.predict(small, [(320, 240, True), (100, 100, False)])
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    target = cv2.resize(target.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    valid = cv2.resize(valid.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    rss0 = _current_rss_mb()
    tracemalloc.start()
    clicks, times = click_chain(seg, image, target, valid, args.large_clicks)
    _, numpy_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {"size": [w, h], "megapixels": w * h / 1e6, "clicks": len(clicks), "click_seconds": times,
           "rss_before_mb": rss0, "rss_peak_mb": _peak_rss_mb(),
           "rss_growth_mb": max(0.0, _peak_rss_mb() - rss0), "numpy_peak_mb": numpy_peak / 2**20,
           "full_res_bool_mask_mb": w * h / 2**20}
    if args.large_peer:
        from train.peers import GrabCutPeer

        out["peer_click_seconds"] = peer_chain(GrabCutPeer(), image, clicks)
    return out


def run_probe(args, size: str) -> dict:
    """memory_probe in a fresh Python process (peak RSS cannot be reset inside one process)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_probe-size", size, "--threads", str(args.threads),
           "--large-clicks", str(args.large_clicks)]
    if args.random_init:
        cmd.append("--random-init")
    if args.weights:
        cmd += ["--weights", args.weights]
    if args.synthetic:
        cmd.append("--synthetic")
    if args.large_peer:
        cmd.append("--large-peer")
    for item in args.segmenter_option:
        cmd += ["--segmenter-option", item]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    if res.returncode != 0:
        raise RuntimeError(f"memory probe for {size} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


class SegmenterOptionError(Exception):
    """A --segmenter-option the Segmenter does not take (a usage error, not a crash)."""


def _segmenter(args):
    from train.evaluate import load_segmenter
    from model import WeightsError

    try:
        return load_segmenter(args.weights, args.random_init, 0, "cpu", options=args.segmenter_options)
    except (TypeError, ValueError) as exc:
        if not args.segmenter_options or isinstance(exc, WeightsError):
            raise
        raise SegmenterOptionError(f"--segmenter-option {args.segmenter_options}: {exc}") from exc
    except WeightsError as exc:
        if args.weights:
            raise
        # No bundled weights yet: latency does not depend on the weights' values, but segment_image's
        # segment count does, so the report says so.
        print(f"no bundled weights ({exc}); measuring an untrained net", file=sys.stderr)
        seg, desc = load_segmenter(None, True, 0, "cpu", options=args.segmenter_options)
        desc["name"] += " (fallback: no bundled weights)"
        return seg, desc


# ---------------------------------------------------------------- runtimes

def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def run_runtimes(args) -> dict:
    """Every candidate runtime on the same clicks and images; agreement with eager PyTorch's masks."""
    import tempfile

    import torch

    from model import Segmenter, runtime
    from runtime_candidates import CANDIDATES

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    names = list(CANDIDATES) if args.runtimes == "all" else args.runtimes.split(",")
    seg, weights = _segmenter(args)
    seg._runner = runtime.TorchRunner(seg.net)  # the reference: eager PyTorch
    images, source = load_images(args.images, args.synthetic)
    # Reference chains: clicks placed by eager PyTorch's own errors; every runtime then gets the same clicks.
    chains, ref_masks, ref_labels = [], [], []
    _, wimg, wt, wv = images[0]
    click_chain(seg, np.ascontiguousarray(wimg[:, ::-1]), wt[:, ::-1], wv[:, ::-1], 2)
    for name, image, target, valid in images:
        clicks, _ = click_chain(seg, image, target, valid, args.clicks)
        chains.append(clicks)
        ref_masks.append([seg.predict(image, clicks[:k]).mask for k in range(1, len(clicks) + 1)])
        ref_labels.append(seg.segment_image(image))
    # A cold ONNX export (empty cache) is a one-off per weights; report it apart from the (cached) load time.
    cold = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        runtime.onnx_runner(seg.net, cache=Path(tmp))
        cold["onnxruntime"] = time.perf_counter() - t0
    results = {}
    for rname in names:
        try:
            t0 = time.perf_counter()
            runner = CANDIDATES[rname](seg.net)
            load = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot load is reported, not fatal
            results[rname] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            print(f"{rname}: unavailable ({exc})", file=sys.stderr)
            continue
        seg._runner, seg._last, seg._resized = runner, None, None
        try:
            click_chain(seg, np.ascontiguousarray(wimg[:, ::-1]), wt[:, ::-1], wv[:, ::-1], 2)  # warm-up
            first, rest, ious, seg_times, seg_ious = [], [], [], [], []
            for (name, image, target, valid), clicks, refs, ref_lab in zip(images, chains, ref_masks, ref_labels):
                seg._last = None
                for k in range(1, len(clicks) + 1):
                    t0 = time.perf_counter()
                    mask = seg.predict(image, clicks[:k]).mask
                    (first if k == 1 else rest).append(time.perf_counter() - t0)
                    ious.append(_iou(mask, refs[k - 1]))
                t0 = time.perf_counter()
                labels = seg.segment_image(image)
                seg_times.append(time.perf_counter() - t0)
                seg_ious.append(float((labels == ref_lab).mean()))  # pixels with the same segment id
        except Exception as exc:  # noqa: BLE001
            results[rname] = {"error": f"{type(exc).__name__}: {exc}"[:200], "load_seconds": load}
            print(f"{rname}: failed ({exc})", file=sys.stderr)
            continue
        results[rname] = {"click": _percentiles(first + rest), "first_click": _percentiles(first),
                          "segment_image": _percentiles(seg_times), "load_seconds": load,
                          "cold_load_seconds": cold.get(rname), "mask_iou_vs_torch": float(np.mean(ious)),
                          "min_mask_iou_vs_torch": float(np.min(ious)),
                          "segment_image_agreement": float(np.mean(seg_ious))}
        print(f"{rname}: click p50 {results[rname]['click']['p50'] * 1000:.0f} ms, "
              f"IoU vs torch {results[rname]['mask_iou_vs_torch']:.4f}", file=sys.stderr, flush=True)
    default = runtime.make_runner(seg.net, "cpu", "auto").name
    return {"command": " ".join(shlex.quote(a) for a in [sys.argv[0]] + args.argv), "weights": weights,
            "images_source": source, "image_size": list(SIZE), "n_images": len(images),
            "clicks_per_image": args.clicks, "threads": args.threads, "runtimes": results,
            "default_runtime": default}


def format_runtimes(r: dict) -> str:
    lines = [f"runtimes {r['image_size'][0]}x{r['image_size'][1]}  images {r['n_images']} ({r['images_source']})  "
             f"clicks/image {r['clicks_per_image']}  threads {r['threads']}  weights {r['weights']['name']}",
             f"{'runtime':<26}{'click p50':>10}{'p90':>7}{'first p50':>10}{'seg_img s':>10}{'load s':>21}"
             f"{'IoU vs torch':>13}{'min IoU':>9}{'seg agr':>9}"]
    for name, m in r["runtimes"].items():
        if "error" in m:
            lines.append(f"{name:<26}unavailable: {m['error']}")
            continue
        load = f"{m['load_seconds']:.2f}" + (f" (cold {m['cold_load_seconds']:.1f})" if m.get("cold_load_seconds")
                                             else "")
        lines.append(f"{name:<26}{_ms(m['click']['p50']):>10}{_ms(m['click']['p90']):>7}"
                     f"{_ms(m['first_click']['p50']):>10}{m['segment_image']['mean']:>10.2f}{load:>21}"
                     f"{m['mask_iou_vs_torch']:>13.4f}{m['min_mask_iou_vs_torch']:>9.4f}"
                     f"{m['segment_image_agreement']:>9.4f}")
    lines.append(f"default runtime of the Segmenter on this machine: {r['default_runtime']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def run_bench(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    seg, weights = _segmenter(args)
    images, source = load_images(args.images, args.synthetic)
    peer = None
    if not args.no_peer:
        from train.peers import GrabCutPeer

        peer = GrabCutPeer()

    # Warm-up: first calls pay for lazy initialisation (thread pools, allocator), not part of a click.
    # A mirrored image: the Segmenter caches by content, so warming up on a measured image would make its
    # first clicks cache hits.
    _, wimg, wt, wv = images[0]
    wimg, wt, wv = (np.ascontiguousarray(a[:, ::-1]) for a in (wimg, wt, wv))
    click_chain(seg, wimg, wt, wv, 2)
    if peer is not None:
        peer.predict(wimg, [(320, 240, True)])

    net_first, net_next, peer_first, peer_next, per_image, net_preview = [], [], [], [], [], []
    seg_times, seg_counts, peer_seg_times, peer_seg_counts = [], [], [], []
    for name, image, target, valid in images:
        clicks, times = click_chain(seg, image, target, valid, args.clicks, net_preview)
        rec = {"name": name, "clicks": [list(c) for c in clicks], "net_click_seconds": times}
        net_first += times[:1]
        net_next += times[1:]
        if peer is not None:
            pt = peer_chain(peer, image, clicks)
            rec["grabcut_click_seconds"] = pt
            peer_first += pt[:1]
            peer_next += pt[1:]
        t0 = time.perf_counter()
        labels = seg.segment_image(image)
        seg_times.append(time.perf_counter() - t0)
        seg_counts.append(int(labels.max()))
        rec["net_segment_image_seconds"], rec["net_segments"] = seg_times[-1], seg_counts[-1]
        if peer is not None and not args.no_peer_full:
            t0 = time.perf_counter()
            labels = peer.segment_image(image, side=seg.full_image_side)
            peer_seg_times.append(time.perf_counter() - t0)
            peer_seg_counts.append(int(labels.max()))
            rec["grabcut_segment_image_seconds"] = peer_seg_times[-1]
            rec["grabcut_segments"] = peer_seg_counts[-1]
        per_image.append(rec)
        print(f"{name}: net {np.mean(times) * 1000:.0f} ms/click, segment_image {seg_times[-1]:.2f} s",
              file=sys.stderr, flush=True)

    methods = {"net": {"click": _percentiles(net_first + net_next), "first_click": _percentiles(net_first),
                       "first_click_preview": _percentiles(net_preview),
                       "next_click": _percentiles(net_next), "segment_image": _percentiles(seg_times),
                       "segments_per_image": float(np.mean(seg_counts))}}
    if peer is not None:
        methods["grabcut"] = {"click": _percentiles(peer_first + peer_next), "first_click": _percentiles(peer_first),
                              "next_click": _percentiles(peer_next),
                              "segment_image": _percentiles(peer_seg_times),
                              "segments_per_image": float(np.mean(peer_seg_counts)) if peer_seg_counts else None}
    memory = {}
    if not args.no_large:
        memory["small"] = run_probe(args, f"{SIZE[0]}x{SIZE[1]}")
        memory["large"] = run_probe(args, args.large)
    return {"command": " ".join(shlex.quote(a) for a in [sys.argv[0]] + args.argv),
            "weights": weights, "segmenter_options": args.segmenter_options, "images_source": source,
            "image_size": list(SIZE), "n_images": len(images),
            "clicks_per_image": args.clicks, "threads": args.threads, "device": seg.device,
            "net_internal_side": seg.max_side, "methods": methods, "memory": memory, "per_image": per_image}


def _ms(v) -> str:
    return "n/a" if v is None or np.isnan(v) else f"{v * 1000:.0f}"


def _ratio(a, b) -> str:
    return "n/a" if a is None or b is None or np.isnan(a) or np.isnan(b) or b == 0 else f"{a / b:.2f}"


def format_table(r: dict) -> str:
    m = r["methods"]
    net, gc = m["net"], m.get("grabcut")
    lines = [f"bench {r['image_size'][0]}x{r['image_size'][1]}  images {r['n_images']} ({r['images_source']})  "
             f"clicks/image {r['clicks_per_image']}  threads {r['threads']}  device {r['device']}  "
             f"weights {r['weights']['name']}",
             f"{'':<28}{'net':>10}{'grabcut':>10}{'net/grabcut':>13}"]

    def row(label, a, b, fmt=_ms):
        lines.append(f"{label:<28}{fmt(a):>10}{(fmt(b) if gc else 'n/a'):>10}{_ratio(a, b):>13}")

    for key, label in (("click", "click latency"), ("first_click", "first click"), ("next_click", "next clicks")):
        for p in ("p50", "p90"):
            row(f"{label} {p} (ms)", net[key][p], gc[key][p] if gc else None)
    for p in ("p50", "p90"):  # the annotator shows the first pass while the first click's refinements run
        row(f"first click preview {p} (ms)", net.get("first_click_preview", {}).get(p), None)
    sec = lambda v: "n/a" if v is None or np.isnan(v) else f"{v:.2f}"  # noqa: E731
    row("segment_image mean (s)", net["segment_image"]["mean"], gc["segment_image"]["mean"] if gc else None, sec)
    row("segments per image", net["segments_per_image"], gc["segments_per_image"] if gc else None,
        lambda v: "n/a" if v is None else f"{v:.1f}")
    mem = r.get("memory") or {}
    if mem:
        lines.append("memory and latency by image size (fresh process each; clicks after a warm-up):")
        lines.append(f"  {'size':<12}{'MP':>6}{'net p50 ms':>12}{'grabcut p50':>13}{'RSS growth MB':>15}"
                     f"{'numpy peak MB':>15}{'mask MB':>9}")
        for k in ("small", "large"):
            p = mem[k]
            gp = _percentiles(p.get("peer_click_seconds", []))["p50"] if "peer_click_seconds" in p else None
            size = f"{p['size'][0]}x{p['size'][1]}"
            lines.append(f"  {size:<12}{p['megapixels']:>6.1f}"
                         f"{_ms(_percentiles(p['click_seconds'])['p50']):>12}{_ms(gp):>13}"
                         f"{p['rss_growth_mb']:>15.1f}{p['numpy_peak_mb']:>15.1f}{p['full_res_bool_mask_mb']:>9.1f}")
        lines.append(f"  (the net's input is at most {r['net_internal_side']} px on the long side at any size; "
                     "memory growth with megapixels is in numpy arrays at full resolution (see numpy peak), "
                     "not in the net)")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weights", help="net weights (.safetensors or trainer .pt); default: bundled")
    g.add_argument("--random-init", action="store_true", help="an untrained net")
    p.add_argument("--images", type=int, default=20,
                   help="photos (default 20: the first click happens once a photo, so its p50 needs several)")
    p.add_argument("--clicks", type=int, default=10, help="clicks per image (a correction chain)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write all numbers here")
    p.add_argument("--large", default="4000x3000", help="size WxH of the large-image measurement")
    p.add_argument("--large-clicks", type=int, default=3)
    p.add_argument("--large-peer", action="store_true", help="also GrabCut on the large image (slow)")
    p.add_argument("--no-large", action="store_true", help="skip the large-image / memory measurement")
    p.add_argument("--no-peer", action="store_true", help="no GrabCut")
    p.add_argument("--no-peer-full", action="store_true", help="no sequential GrabCut segment_image (slow)")
    p.add_argument("--synthetic", action="store_true", help="synthetic images even when real data is there")
    p.add_argument("--runtimes", help="compare inference runtimes instead: 'all' or a comma-separated list "
                   "(bench/runtime_candidates.py)")
    p.add_argument("--segmenter-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Segmenter keyword argument, e.g. guided_radius=0 (repeatable; JSON values)")
    p.add_argument("--_probe-size", dest="probe_size", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    from train.evaluate import parse_segmenter_options

    try:
        a.segmenter_options = parse_segmenter_options(a.segmenter_option)
    except ValueError as exc:
        p.error(str(exc))
    a.argv = argv
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        if args.probe_size:
            print(json.dumps(memory_probe(args)))
            return 0
        if args.runtimes:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            result = run_runtimes(args)
            print(format_runtimes(result))
        else:
            result = run_bench(args)
            print(format_table(result))
    except SegmenterOptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        from train.evaluate import write_json

        write_json(result, args.json)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
