"""`python -m train continue`: one training run that keeps going across many starts.

Each start resumes from the newest checkpoint in the run folder (default ``~/.cache/pointer-annotator/continuous``,
outside the work tree), or, when there is none, from the shipped weights. The run trains in legs of
``--leg-minutes``; after each leg it keeps a weights snapshot and measures it on the fixed validation split
(``train/val_split.json``: NoC@85/90 and IoU@1 with the real ``Segmenter``, the standard click protocol), appends a
row to ``curve.csv`` and redraws ``curve.png`` (loss and validation NoC@90 over steps). A checkpoint (weights,
optimiser, sampler state, step) is written every ``--ckpt-minutes`` and when the process is stopped with SIGTERM
or Ctrl+C; after a SIGKILL the next start continues from the last checkpoint. Run it at low priority beside other
work::

    nohup nice -n 19 python -m train continue > ~/.cache/pointer-annotator/continuous.log 2>&1 &

The recipe (sources and settings) is ``recipe()``: every training source in ``../shared/data`` with the validation
split held out of each, copy-paste of their objects onto other photos, correction rounds on the net's own errors,
a constant learning rate (the run is judged by its curve, not annealed to an end). Candidates for shipping come
from the run's weight average (``EMA_DECAY``, an ``ema`` row after each leg) and, with ``--cooldown-minutes``, from
a branch off each leg's snapshot annealed to 0 (a ``cooldown`` row).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

DEFAULT_RUN = Path(os.environ.get("POINTER_ANNOTATOR_CACHE", Path.home() / ".cache" / "pointer-annotator")) / "continuous"
CURVE_FIELDS = ["step", "branch", "train_hours", "val_objects", "noc85", "noc90", "iou1", "left_at_20",
                "coco_noc90", "coco_iou1", "salient_noc90", "salient_iou1", "neg_gain", "neg_chains",
                "vs_shipped_noc90", "vs_shipped_se", "meets_rule", "weights"]
# The split's photo sources, each reported on its own: 360 salient-object photos would otherwise hide a loss on
# the 41 COCO photos of cluttered scenes (a first leg gained 0.66 clicks overall while COCO lost 1.6).
PHOTO_SOURCES = {"coco_mval_train": "coco", "salient": "salient"}


# The run's weight average (TrainConfig.ema): about the last 500 steps (20 minutes), a cool-down's length in steps
# of 45 minutes is 600-1000; measured after each leg as an "ema" row beside the constant-rate snapshot.
EMA_DECAY = 0.998


def recipe(data_root: str | Path, out: str | Path, threads: int = 1):
    """The TrainConfig of the continuous run over the data in `data_root`."""
    from model.segmenter import BUNDLED_WEIGHTS

    from .trainer import TrainConfig

    d = Path(data_root)
    # Weights: the first 410 steps drew salient photos 3 : COCO 2 : BSDS 1.5, and the COCO photos of the split lost
    # 1.6 clicks (NoC@90 4.83 -> 6.46) while the salient ones gained; COCO objects in cluttered scenes are what
    # people label, so COCO now leads and the new sources follow.
    # Copy-paste with rows of alike copies (crowd=0.3) from step 3479 on: the constant-rate curve had been flat
    # for 2400 steps (NoC@90 6.35, 6.35, 6.34) and first clicks spilled onto alike neighbours on about a sixth of
    # the COCO validation photos; the legs after that step measure the change against that plateau.
    sources = [f"masks:{d / 'coco_mval_train'}:3", f"masks:{d / 'salient'}:1", f"bsds:{d / 'bsds'}:1",
               f"semantic:{d / 'camvid' / 'train'}:1", "synthetic:3000:0.5",
               f"copypaste:{d / 'coco_mval_train'}+{d / 'salient'}+semantic={d / 'camvid' / 'train'}"
               f"+bsds={d / 'bsds'}:2:20000:crowd=0.3"]
    return TrainConfig(sources=sources, out=str(out), steps=10 ** 9, batch_size=8, crop=448, lr=5e-5, warmup=30,
                       val_every=200, val_examples=64, ckpt_every=50, ckpt_minutes=5.0, log_every=10, workers=1,
                       init_weights=str(BUNDLED_WEIGHTS), threads=threads, freeze_bn=True, iterative=0.4,
                       schedule="constant", exclude_val=True, ema=EMA_DECAY)


def read_curve(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_curve(path: Path, row: dict) -> None:
    old_rows = read_curve(path)
    if old_rows and list(old_rows[0]) != CURVE_FIELDS:  # a curve written with fewer columns: rewrite it once
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
            w.writeheader()
            for r in old_rows:
                w.writerow({k: r.get(k, "") for k in CURVE_FIELDS})
        os.replace(tmp, path)
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in CURVE_FIELDS})
        f.flush()
        os.fsync(f.fileno())


def validation_objects(data_root: str | Path, limit: int | None = None) -> list:
    """[(reader, index)] of the photo objects of the validation split, COCO-MVal first; `limit` takes an even
    share of each source (the same objects every time)."""
    from .readers import FolderMaskReader
    from .splits import load_val_split

    split = load_val_split()
    out = []
    for source in PHOTO_SOURCES:
        folder = Path(data_root) / source
        if not folder.is_dir():
            continue
        reader = FolderMaskReader(folder, names=split[source])
        n = len(reader)
        take = range(n) if limit is None else range(0, n, max(1, n // max(1, limit // 2)))
        out += [(reader, i) for i in take]
    return out[:limit] if limit else out


def measure(weights: str | Path, data_root: str | Path, limit: int | None = None, threads: int = 1,
            max_clicks: int = 20, per_image: list | None = None) -> dict:
    """NoC@85/90, IoU@1 and objects left below 90% at `max_clicks` of `weights` on the validation photos, and
    NoC@90 and IoU@1 of each photo source (`coco_noc90`, `salient_iou1`, ...). `neg_gain`: the mean IoU gained by
    the first negative click, over the `neg_chains` objects whose clicks include one before reaching 90%: whether
    a negative click removes the wrong region it hits (a large gain) or only a click-sized notch (near 0).
    `per_image`, when given, receives each object's clicks in `train.evaluate`'s JSON layout, for `train.paired`."""
    import cv2
    import numpy as np
    import torch

    from . import evaluate as ev

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    segmenter, _ = ev.load_segmenter(str(weights), False, backend="torch")
    method = ev.NetMethod(segmenter)
    noc85, noc90, iou1, neg_gain, left = [], [], [], [], 0
    by_source: dict[str, dict[str, list]] = {}
    for reader, i in validation_objects(data_root, limit):
        sample = reader[i]
        if not sample.segments:
            continue
        # Stopping at 0.9 leaves NoC@85/90, IoU@1 and "left" as they are, at a third of the clicks.
        r = ev.run_click_protocol(method.predict, sample.image, sample.segments[0], ~sample.ignore, max_clicks,
                                  stop_at=0.9)
        noc85.append(r["noc85"])
        noc90.append(r["noc90"])
        iou1.append(r["ious"][0])
        left += int(max(r["ious"]) < 0.9)
        if r["first_negative_gain"] is not None:
            neg_gain.append(r["first_negative_gain"])
        if per_image is not None:
            per_image.append({"name": f"{Path(reader.root).name}/{sample.name}", "objects": [
                {"segment": 0, "net": {"noc85": r["noc85"], "noc90": r["noc90"],
                                       "ious": [float(v) for v in r["ious"]]}}]})
        src = by_source.setdefault(PHOTO_SOURCES[Path(reader.root).name], {"noc90": [], "iou1": []})
        src["noc90"].append(r["noc90"])
        src["iou1"].append(r["ious"][0])
    out = {"val_objects": len(noc90), "noc85": float(np.mean(noc85)), "noc90": float(np.mean(noc90)),
           "iou1": float(np.mean(iou1)), "left_at_20": left,
           "neg_gain": float(np.mean(neg_gain)) if neg_gain else float("nan"), "neg_chains": len(neg_gain)}
    for name, v in by_source.items():
        out[f"{name}_noc90"] = float(np.mean(v["noc90"]))
        out[f"{name}_iou1"] = float(np.mean(v["iou1"]))
    return out


def measure_to_json(weights: str | Path, json_path: Path, data_root: str | Path, limit: int | None = None,
                    threads: int = 1) -> dict:
    """`measure()`, and every object's clicks written to `json_path` (`train.paired`'s layout) with the weights'
    SHA-256, so that later candidates are compared with these weights object by object."""
    from .files import sha256_file

    records: list = []
    m = measure(weights, data_root, limit, threads, per_image=records)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"weights": str(weights), "sha256": sha256_file(weights),
                               "settings": {"max_clicks": 20, "limit": limit}, "summary": m,
                               "per_image": records}))
    os.replace(tmp, json_path)
    return m


def shipping_verdict(shipped: dict, candidate: dict) -> dict:
    """The shipping rule applied to two `measure_to_json` results: the candidate's NoC@90 on the validation photos
    is lower than the shipped weights' by more than one standard error of the paired difference, and no photo
    source's NoC@90 is higher by more than two of its own (the 41 COCO photos swing by half a click either way).
    Returns the paired difference of NoC@90, its standard error and whether the rule is met."""
    from .paired import compare

    whole = compare(shipped, candidate)["noc90"]
    meets = whole["diff"] < -whole["se"]
    for source in PHOTO_SOURCES:
        try:
            part = compare(shipped, candidate, prefix=f"{source}/")["noc90"]
        except ValueError:  # the source is not in the split measured (a small --eval-limit, test data)
            continue
        se = part["se"] if part["se"] == part["se"] else 0.0  # one object: no spread, any loss counts
        meets = meets and part["diff"] <= 2 * se
    return {"vs_shipped_noc90": round(whole["diff"], 4), "vs_shipped_se": round(whole["se"], 4),
            "meets_rule": int(meets)}


def _shipped_reference(run: Path, args: argparse.Namespace, limit: int | None) -> dict | None:
    """The shipped weights' clicks on the validation photos (run/shipped.measure.json), measured again when the
    shipped weights change; None when measuring is off."""
    from model.segmenter import BUNDLED_WEIGHTS

    from .files import sha256_file

    if args.eval_limit == 0 or not Path(BUNDLED_WEIGHTS).is_file():
        return None
    path = run / "shipped.measure.json"
    if path.is_file():
        ref = json.loads(path.read_text())
        if ref.get("sha256") == sha256_file(BUNDLED_WEIGHTS) and ref.get("settings", {}).get("limit") == limit:
            return ref
    measure_to_json(BUNDLED_WEIGHTS, path, args.data, limit, args.threads)
    return json.loads(path.read_text())


def measure_candidate(run: Path, weights: Path, json_path: Path, args: argparse.Namespace,
                      limit: int | None) -> dict:
    """A snapshot's curve figures, with the shipping rule's verdict against the shipped weights."""
    m = measure_to_json(weights, json_path, args.data, limit, args.threads)
    ref = _shipped_reference(run, args, limit)
    if ref is not None:
        m.update(shipping_verdict(ref, json.loads(json_path.read_text())))
    return m


def _report(step: int, what: str, m: dict) -> None:
    print(f"step {step}{what}: {json.dumps(m)}", flush=True)
    if m.get("meets_rule"):
        print(f"step {step}{what} meets the shipping rule: NoC@90 {m['vs_shipped_noc90']:+.3f} (s.e. "
              f"{m['vs_shipped_se']:.3f}) against the shipped weights; ship it (docs/training.md)", flush=True)


def plot_curve(run: Path, png: Path) -> None:
    """Training loss (from log.csv, smoothed) and validation NoC@90 (curve.csv) over steps, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps, losses = [], []
    log = run / "log.csv"
    if log.is_file():
        with open(log, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    steps.append(int(row["step"]))
                    losses.append(float(row["loss"]))
                except (KeyError, ValueError):
                    continue
    curve = [r for r in read_curve(run / "curve.csv") if r.get("noc90")]
    fig, ax = plt.subplots(figsize=(7, 4.4), dpi=100)
    if losses:
        k = max(1, min(20, len(losses) // 10))
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, color="tab:blue", lw=1)
    ax.set_xlabel("training step (batches of 8)")
    ax.set_ylabel("training loss", color="tab:blue")
    ax2 = ax.twinx()
    if curve:
        run_rows = [r for r in curve if r.get("branch") not in ("cooldown", "ema")]
        cooled = [r for r in curve if r.get("branch") == "cooldown"]
        averaged = [r for r in curve if r.get("branch") == "ema"]
        ax2.plot([int(r["step"]) for r in run_rows], [float(r["noc90"]) for r in run_rows], "o-", color="tab:red",
                 label="all validation photos")
        # The shipping rule also watches each photo source: the 41 COCO photos moved against the rest before.
        coco = [r for r in run_rows if r.get("coco_noc90")]
        if coco:
            ax2.plot([int(r["step"]) for r in coco], [float(r["coco_noc90"]) for r in coco], "s--",
                     color="tab:orange", label="COCO photos (41)")
        if cooled:
            ax2.plot([int(r["step"]) for r in cooled], [float(r["noc90"]) for r in cooled], "^", color="tab:red",
                     mfc="none", label="all, cooled down")
            ax2.plot([int(r["step"]) for r in cooled], [float(r["coco_noc90"]) for r in cooled], "^",
                     color="tab:orange", mfc="none", label="COCO, cooled down")
        if averaged:
            ax2.plot([int(r["step"]) for r in averaged], [float(r["noc90"]) for r in averaged], "D", color="tab:red",
                     mfc="none", label="all, weight average")
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, fontsize=8, frameon=False)
    ax2.set_ylabel("validation NoC@90 (lower is better)", color="tab:red")
    n = curve[-1]["val_objects"] if curve else "?"
    ax.set_title(f"Continuous run: loss and NoC@90 on {n} validation objects")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png)


def _train_hours(run: Path) -> float:
    import torch

    ckpt = run / "checkpoint.pt"
    if not ckpt.is_file():
        return 0.0
    return float(torch.load(ckpt, map_location="cpu", weights_only=True).get("elapsed", 0.0)) / 3600


def _measured(curve_path: Path, step: int, branch: str) -> bool:
    """Whether curve.csv has a row for `step` of `branch` (rows from before branches existed are "constant")."""
    return any(int(r["step"]) == step and (r.get("branch") or "constant") == branch for r in read_curve(curve_path))


def cool_down(run: Path, cfg, snap: Path, step: int, args: argparse.Namespace, limit: int | None) -> bool:
    """A branch off the run at `snap`: the same recipe for `args.cooldown_minutes` more, the learning rate decaying
    to 0 on a cosine, in run/cooldown/step_N/ (resumable like the run); its weights are measured as a "cooldown"
    row of curve.csv. The run itself goes on from its own checkpoint at a constant rate, so each leg yields both
    the trend and an annealed candidate for shipping (the warmup-stable-decay schedule). False if stopped."""
    from .trainer import train

    out = run / "cooldown" / snap.stem
    curve_path = run / "curve.csv"
    weights = out / "weights.safetensors"
    if not (out / "done").is_file():
        branch = replace(cfg, out=str(out), init_weights=str(snap), resume=True, schedule="cosine", warmup=30,
                         max_minutes=args.cooldown_minutes, leg_minutes=0.0, ema=0.0)
        summary = train(branch)
        print(json.dumps({"cooldown_of": step, **summary}), flush=True)
        if summary.get("terminated"):
            return False
        (out / "done").write_text(str(summary.get("steps", "")))
    if args.eval_limit != 0 and not _measured(curve_path, step, "cooldown"):
        m = measure_candidate(run, weights, out / "measure.json", args, limit)
        append_curve(curve_path, {"step": step, "branch": "cooldown", "train_hours": round(_train_hours(run), 3),
                                  "weights": str(weights), **m})
        _report(step, ", cooled down", m)
    return True


def lower_priority() -> int:
    """Give this process's scheduling group the process's own nice value and return it. Linux groups processes by
    session (autogroup) and shares the CPU between groups before `nice` counts, so a `nice -n 19` run started with
    `setsid` or from another terminal still took half the CPU from a test or a benchmark (a validation pass beside
    it ran 5x slower). Nothing to do where there are no autogroups."""
    level = os.nice(0)
    group = Path("/proc/self/autogroup")
    if level > 0 and group.is_file():
        try:
            group.write_text(str(level))
        except OSError:  # no permission to change the group's nice value: as before
            pass
    return level


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def run_continuous(args: argparse.Namespace) -> int:
    from model.segmenter import BUNDLED_WEIGHTS
    from model.weights import load_net, save_weights

    from .trainer import train

    lower_priority()
    run = Path(args.out)
    run.mkdir(parents=True, exist_ok=True)
    cfg = recipe(args.data, run, args.threads)
    cfg = replace(cfg, leg_minutes=args.leg_minutes, ckpt_minutes=args.ckpt_minutes, resume=True)
    if args.crop:
        cfg = replace(cfg, crop=args.crop)
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    if args.sources:
        cfg = replace(cfg, sources=list(args.sources))
    if args.init_weights:
        cfg = replace(cfg, init_weights=args.init_weights)
    curve_path = run / "curve.csv"
    ckpt = run / "checkpoint.pt"
    limit = None if args.eval_limit < 0 else args.eval_limit
    print(f"run folder {run}; " + (f"resuming from {ckpt}" if ckpt.is_file() else f"starting from {cfg.init_weights}"),
          flush=True)
    if args.eval_limit != 0 and not read_curve(curve_path) and not ckpt.is_file():
        ref = _shipped_reference(run, args, limit) if _same_file(cfg.init_weights, BUNDLED_WEIGHTS) else None
        m = ref["summary"] if ref else measure(cfg.init_weights, args.data, limit, args.threads)
        append_curve(curve_path, {"step": 0, "branch": "start", "train_hours": 0.0, "weights": cfg.init_weights, **m})
        print(f"step 0 (start weights): {json.dumps(m)}", flush=True)
    snaps = sorted((run / "snapshots").glob("step_*.safetensors"))
    if args.cooldown_minutes > 0 and snaps:  # a cool-down stopped part way: finish it before the next leg
        last = int(snaps[-1].stem.split("_")[1])
        if (run / "cooldown" / snaps[-1].stem).is_dir() and not cool_down(run, cfg, snaps[-1], last, args, limit):
            return 0
    deadline = time.time() + 3600 * args.hours if args.hours else None
    while deadline is None or time.time() < deadline:
        leg = cfg
        if deadline is not None:
            leg = replace(cfg, leg_minutes=max(0.1, min(cfg.leg_minutes, (deadline - time.time()) / 60)))
        summary = train(leg)
        print(json.dumps(summary), flush=True)
        step = int(summary["steps"])
        snap = run / "snapshots" / f"step_{step:07d}.safetensors"
        if not snap.is_file():
            net, _ = load_net(run / "weights.safetensors")
            save_weights(net, snap, {"steps": step, "sources": cfg.sources, "crop": cfg.crop})
        if summary.get("terminated"):
            return 0
        ema_snap = run / "ema" / snap.name
        if (run / "ema.safetensors").is_file() and not ema_snap.is_file():
            ema_snap.parent.mkdir(exist_ok=True)
            shutil.copyfile(run / "ema.safetensors", ema_snap)
        if args.eval_limit != 0 and not _measured(curve_path, step, "constant"):
            m = measure_candidate(run, snap, snap.with_suffix(".measure.json"), args, limit)
            append_curve(curve_path, {"step": step, "branch": "constant", "train_hours": round(_train_hours(run), 3),
                                      "weights": str(snap), **m})
            _report(step, "", m)
        if args.eval_limit != 0 and ema_snap.is_file() and not _measured(curve_path, step, "ema"):
            m = measure_candidate(run, ema_snap, ema_snap.with_suffix(".measure.json"), args, limit)
            append_curve(curve_path, {"step": step, "branch": "ema", "train_hours": round(_train_hours(run), 3),
                                      "weights": str(ema_snap), **m})
            _report(step, ", weight average", m)
        if args.cooldown_minutes > 0 and not cool_down(run, cfg, snap, step, args, limit):
            return 0
        plot_curve(run, run / "curve.png")
        if args.once:
            break
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train continue", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="the data folder (default ../shared/data)")
    p.add_argument("--out", default=str(DEFAULT_RUN), help=f"run folder (default {DEFAULT_RUN})")
    p.add_argument("--hours", type=float, default=0.0, help="stop after this many hours (0: until stopped)")
    p.add_argument("--leg-minutes", type=float, default=60.0,
                   help="minutes of training between validation measurements (default 60)")
    p.add_argument("--ckpt-minutes", type=float, default=5.0, help="minutes between checkpoints (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--eval-limit", type=int, default=-1,
                   help="validation objects measured after each leg (-1: all of the split; 0: no measurement)")
    p.add_argument("--once", action="store_true", help="one leg, then stop")
    p.add_argument("--cooldown-minutes", type=float, default=0.0,
                   help="after each leg, also train a branch this many minutes with the learning rate decaying to 0 "
                        "and measure it (a candidate for shipping); the run goes on from its own checkpoint "
                        "(default 0: none)")
    p.add_argument("--plot", metavar="PNG", help="only draw the run's curve into PNG (e.g. docs/training_curve.png)")
    p.add_argument("--json", help="with --measure: also write every object's clicks here (for train.paired)")
    p.add_argument("--measure", nargs="?", const="", metavar="WEIGHTS",
                   help="only measure WEIGHTS (default: the shipped weights) on the validation photos, as the run "
                        "measures each leg, and print the figures")
    # For small runs (tests, trials); the continuous run itself uses recipe() as it is.
    p.add_argument("--crop", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sources", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--init-weights", help="weights a new run starts from (default: the shipped weights); a run "
                                          "with a checkpoint resumes from it instead")
    a = p.parse_args(argv)
    if a.eval_limit < -1:
        p.error("--eval-limit must be -1, 0 or a number of objects")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.plot:
        plot_curve(Path(args.out), Path(args.plot))
        print(f"curve written to {args.plot}")
        return 0
    if args.measure is not None:
        from model.segmenter import BUNDLED_WEIGHTS

        weights = args.measure or str(BUNDLED_WEIGHTS)
        limit = None if args.eval_limit < 0 else args.eval_limit
        if args.json:
            m = measure_to_json(weights, Path(args.json), args.data, limit, args.threads)
        else:
            m = measure(weights, args.data, limit, args.threads)
        print(f"{weights}: {m['val_objects']} validation objects, NoC@85 {m['noc85']:.2f}, NoC@90 {m['noc90']:.2f}, "
              f"IoU@1 {m['iou1']:.3f}, left below 90% at 20 clicks {m['left_at_20']}")
        for name in PHOTO_SOURCES.values():
            if f"{name}_noc90" in m:
                print(f"  {name}: NoC@90 {m[name + '_noc90']:.2f}, IoU@1 {m[name + '_iou1']:.3f}")
        print(f"  first negative click: IoU {m['neg_gain']:+.3f} on average over the {m['neg_chains']} objects "
              f"that needed one")
        return 0
    return run_continuous(args)


if __name__ == "__main__":
    sys.exit(main())
