"""Fine-tune the net on your own annotations, and measure whether it got better.

    python -m train finetune COCO_PANOPTIC_JSON [--out DIR] [--base WEIGHTS] [--steps N] ...

To fine-tune on an annotator project, `python main.py finetune PROJECT` (annotator.finetune_job) exports the
project's accepted segments as COCO panoptic first and hands that export to this module; `train/` reads data
sets, never the annotator's projects.

1. Data: a COCO panoptic export (the JSON, its PNG folder beside it, and the image folder the JSON names, as
   annotator.coco_io.export_coco_panoptic writes them). Its PNGs are copied into OUT/data/panoptic/ so that the
   run folder holds the exact data it trained on. From Python, `source` may instead be a function that writes such
   an export into the folder it is given (OUT/data/) and returns the JSON's path. Only images with at least one
   accepted segment take part.
2. Split: about `val_fraction` of the labelled images (at least 1) are held out for validation, by a hash of the
   file name, the same hash the trainer uses, so a growing project keeps its held-out images held out.
   OUT/data/train.json and OUT/data/val.json list the two splits.
3. Training: train.trainer.train starts from the base weights (default: the bundled resources/pointer_seg
   .safetensors) on the training split only; its validation IoU is measured on the held-out split.
   OUT/log.csv, OUT/weights.safetensors. The bundled weights are never written. The trainer's resume checkpoint
   (weights plus optimiser state, about three times the weights' size: 37 MB for the bundled net) is deleted when
   training ends, since a fine-tune never resumes.
4. The before/after table on the held-out images: NoC@90 and IoU@1 under the standard click protocol
   (train.evaluate) for the base and the new weights (and GrabCut with --grabcut), printed and written to
   OUT/report.json; OUT/provenance.json says where the new weights came from. With fewer than
   MIN_EVAL_OBJECTS held-out objects the report says the comparison cannot tell the two apart.

For a GUI the command runs as a separate process (`build_command`): it appends one JSON object per line to
OUT/progress.jsonl ({"phase": ...}, {"step", "steps", "loss", "val_iou", "eta_s"} per logged step, and last
{"done": true, "report": ...} or {"done": true, "error": ...}), and creating OUT/STOP cancels it cleanly: training
stops after the current step, the weights reached so far are kept, the evaluation is skipped
(a STOP file already there when the run starts cancels it after its first step: delete it to run again).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import threading
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from .files import sha256_file

PathLike = str | os.PathLike

DEFAULT_STEPS = 300
DEFAULT_ANCHOR = 0.0
STOP_NAME = "STOP"
PROGRESS_NAME = "progress.jsonl"
_MIN_SEGMENT_AREA = 64  # train.sampling.MIN_SEGMENT_AREA: smaller segments give no training example
# Below this many held-out objects a before/after difference says nothing: NoC@90 varies by about 4 clicks from
# object to object, so the mean of 10 objects is uncertain by about +-1.3 clicks, more than fine-tuning changes it.
MIN_EVAL_OBJECTS = 10


class FinetuneError(ValueError):
    """Fine-tuning cannot start or finish; the message says why (and names the file)."""


# ----------------------------------------------------------------------------------------------- small helpers
def _bundled_weights() -> Path:
    from model.segmenter import BUNDLED_WEIGHTS
    return Path(BUNDLED_WEIGHTS)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(v: Any) -> Any:
    """NaN/inf -> None, so the JSON files are strict JSON that any reader (and the GUI) accepts."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


class ProgressWriter:
    """Appends JSON lines to OUT/progress.jsonl (flushed at once, so another process can tail the file)."""

    def __init__(self, path: Path, echo: Callable[[dict], None] | None = None):
        self.path = path
        self.echo = echo
        self._lock = threading.Lock()
        path.write_text("", encoding="utf-8")  # a rerun into the same folder starts a fresh file

    def write(self, record: dict) -> None:
        record = _clean(record)
        line = json.dumps(record, default=_json_default)
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
        if self.echo is not None:
            self.echo(record)


def read_progress(out_dir: PathLike) -> list[dict]:
    """The records written so far to OUT/progress.jsonl (a half-written last line is left out)."""
    path = Path(out_dir) / PROGRESS_NAME
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # the writer is mid-line
    return out


class _LogTail(threading.Thread):
    """Turns each new row of the trainer's log.csv into a progress record (the trainer has no callback)."""

    def __init__(self, log_path: Path, steps: int, progress: ProgressWriter, interval: float = 0.5):
        super().__init__(daemon=True)
        self.log_path, self.steps, self.progress, self.interval = log_path, steps, progress, interval
        self._stop_evt = threading.Event()
        self._pos = 0
        self._header: list[str] | None = None

    def poll(self) -> None:
        if not self.log_path.is_file():
            return
        with open(self.log_path, encoding="utf-8", newline="") as f:
            f.seek(self._pos)
            chunk = f.read()
        end = chunk.rfind("\n")
        if end < 0:
            return
        self._pos += len(chunk[:end + 1].encode("utf-8"))
        for row in csv.reader(chunk[:end + 1].splitlines()):
            if not row:
                continue
            if row[0] == "step":
                self._header = row
                continue
            if self._header is None:
                continue
            rec = dict(zip(self._header, row))
            try:
                step, seconds = int(rec["step"]), float(rec.get("seconds", "nan"))
                loss, val_iou = float(rec.get("loss", "nan")), float(rec.get("val_iou", "nan"))
            except (KeyError, ValueError):
                continue
            eta = seconds / step * (self.steps - step) if step > 0 else None
            self.progress.write({"phase": "train", "step": step, "steps": self.steps, "loss": loss,
                                 "val_iou": val_iou, "seconds": seconds, "eta_s": eta})

    def run(self) -> None:
        while not self._stop_evt.wait(self.interval):
            self.poll()

    def finish(self) -> None:
        self._stop_evt.set()
        self.join()
        self.poll()  # the rows written after the last poll


# ----------------------------------------------------------------------------------------------- data
def _is_val(name: str, fraction: float) -> bool:
    from .trainer import _is_val as trainer_is_val
    return trainer_is_val(name, fraction)


def _hash(name: str) -> int:
    return zlib.crc32(name.encode()) % 1000  # the trainer's split hash (train.trainer._is_val)


def split_names(names: Sequence[str], val_fraction: float = 0.2) -> tuple[list[str], list[str]]:
    """(train, val) names: those the trainer's hash puts below `val_fraction` are held out, at least one and
    never all. Stable: adding images never moves an old image from one side to the other (except to keep
    one held out in a tiny project)."""
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        raise FinetuneError(f"fine-tuning needs at least 2 labelled images (one to train on, one to measure "
                            f"on), found {len(names)}")
    by_hash = sorted(names, key=lambda n: (_hash(n), n))
    val = [n for n in by_hash if _is_val(n, val_fraction)]
    if not val:
        val = by_hash[:1]
    if len(val) == len(names):
        val = by_hash[:max(1, min(len(names) - 1, round(val_fraction * len(names))))]
    vs = set(val)
    return [n for n in names if n not in vs], [n for n in names if n in vs]


def _trainer_fraction(train_names: Sequence[str], val_names: Sequence[str]) -> float:
    """The trainer's val_fraction under which its own hash split of train.json holds out nothing and of
    val.json holds out everything; 0 (no trainer validation) if hash ties make that impossible."""
    hi = max(_hash(n) for n in val_names)
    frac = (hi + 0.5) / 1000
    if all(_is_val(n, frac) for n in val_names) and not any(_is_val(n, frac) for n in train_names):
        return frac
    return 0.0


def _has_usable_segment(ann: dict) -> bool:
    return any(not s.get("iscrowd", 0) and s.get("area", _MIN_SEGMENT_AREA) >= _MIN_SEGMENT_AREA
               for s in ann.get("segments_info", []))


def default_out_dir(source: PathLike) -> Path:
    """finetune/<timestamp>/ next to a COCO panoptic JSON (inside a folder given instead, e.g. a project's)."""
    source = Path(source)
    root = source if source.is_dir() else source.parent
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")  # no ':' (the trainer's source spec splits on ':')
    return root / "finetune" / stamp


def _describe(source) -> str:
    return str(source) if callable(source) else os.path.abspath(source)


def _not_a_json(source: Path) -> FinetuneError:
    hint = (" (an annotator project: `python main.py finetune PROJECT` exports it and fine-tunes on that)"
            if (source / "project.json").is_file() or source.name == "project.json" else "")
    return FinetuneError(f"{source}: not a COCO panoptic JSON file{hint}")


def prepare_data(source: PathLike | Callable[[Path], PathLike], data_dir: PathLike,
                 val_fraction: float = 0.2) -> dict:
    """Copy a COCO panoptic export's PNGs (or have `source(data_dir)` write an export there), keep the labelled
    images, split them and write train.json and val.json in data_dir. Returns {"source", "json", "train_json",
    "val_json", "train", "val", "png_dir", "image_dir", "train_names", "val_names"}; train/val are image file
    names."""
    from .coco_panoptic import CocoPanopticReader
    from .sample import DataError

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if callable(source):
        json_path = Path(source(data_dir))
    else:
        json_path = Path(source)
        if json_path.is_dir() or json_path.name == "project.json":
            raise _not_a_json(json_path)
    try:
        reader = CocoPanopticReader(json_path)
    except DataError as e:
        raise FinetuneError(str(e)) from e

    anns = [(a, name) for a, name in zip(reader.annotations, reader.names) if _has_usable_segment(a)]
    if not any(True for _ in anns):
        raise FinetuneError(f"{json_path}: no image has an accepted segment of at least {_MIN_SEGMENT_AREA} "
                            "pixels: label some images first")
    train_names, val_names = split_names([n for _, n in anns], val_fraction)
    val_set = set(val_names)

    png_dir = data_dir / "panoptic"
    if reader.png_dir.resolve() != png_dir.resolve():
        # Copy the PNGs the run uses, so the run folder documents its data and readers find them (the
        # trainer's `coco:` source finds PNGs only next to the JSON).
        png_dir.mkdir(exist_ok=True)
        for a, _ in anns:
            src = reader.png_dir / a["file_name"]
            if not src.is_file():
                raise FinetuneError(f"{src}: panoptic PNG listed in {json_path} is missing")
            shutil.copy2(src, png_dir / Path(a["file_name"]).name)

    with open(json_path, encoding="utf-8") as f:
        data = json.load(f)
    base = {k: v for k, v in data.items() if k not in ("images", "annotations")}
    base["image_dir"] = os.path.abspath(reader.image_dir)
    base["finetune_source"] = os.path.abspath(json_path)

    def write(split_names_: set[str], path: Path) -> list[str]:
        sel = [dict(a, file_name=Path(a["file_name"]).name) for a, n in anns if n in split_names_]
        ids = {a["image_id"] for a in sel}
        images = [reader.images[i] for i in reader.images if i in ids]
        _write_json_atomic(path, dict(base, images=images, annotations=sel))
        return [reader.images[a["image_id"]]["file_name"] for a in sel]

    train_json, val_json = data_dir / "train.json", data_dir / "val.json"
    train_files = write(set(train_names), train_json)
    val_files = write(val_set, val_json)
    return {"source": _describe(source), "json": os.path.abspath(json_path),
            "train_json": os.path.abspath(train_json), "val_json": os.path.abspath(val_json),
            "train": train_files, "val": val_files, "train_names": train_names, "val_names": val_names,
            "image_dir": os.path.abspath(reader.image_dir)}


def _source_spec(path: str, weight: float) -> str:
    """`coco:PATH:WEIGHT` for the trainer, which splits specs on ':' (so PATH may not contain one)."""
    p = path
    if ":" in p:
        try:
            p = os.path.relpath(p)
        except ValueError:
            pass
    if ":" in p:
        raise FinetuneError(f"{path}: the output path may not contain ':' (the trainer's data source syntax "
                            "uses it); choose another --out")
    return f"coco:{p}:{weight:g}"


REPLAY_WEIGHT = 1.0  # replayed data : project data, in training examples


def replay_spec(path_or_spec: str, weight: float = REPLAY_WEIGHT) -> str:
    """A trainer source spec for replayed data. Specs (`masks:DIR[:w]`, `semantic:DIR`, `coco:JSON`,
    `synthetic:N`) pass through; a plain path is recognised: a folder with images/ + masks/ (binary masks),
    with images/ + labels/ (semantic label maps), or a COCO panoptic JSON. FinetuneError if it is none of them."""
    kind = path_or_spec.split(":", 1)[0]
    if kind in ("masks", "semantic", "coco", "synthetic") and ":" in path_or_spec:
        return path_or_spec
    path = Path(path_or_spec)
    if path.is_dir() and (path / "images").is_dir() and (path / "masks").is_dir():
        kind = "masks"
    elif path.is_dir() and (path / "images").is_dir() and (path / "labels").is_dir():
        kind = "semantic"
    elif path.is_file() and path.suffix.lower() == ".json":
        kind = "coco"
    else:
        raise FinetuneError(f"--replay {path_or_spec}: not a folder with images/ and masks/ (or labels/), nor a "
                            "COCO panoptic JSON")
    p = os.fspath(path)
    if ":" in p:
        p = os.path.relpath(p)
    if ":" in p:
        raise FinetuneError(f"--replay {path_or_spec}: the path may not contain ':'")
    return f"{kind}:{p}:{weight:g}"


def _check_replay(spec: str) -> None:
    """A replay source that the trainer can open, or a FinetuneError saying why not (before any work)."""
    from .sample import DataError
    from .trainer import open_source

    try:
        reader, weight, _ = open_source(spec)
        n = len(reader)
    except (DataError, OSError, ValueError, IndexError) as e:
        raise FinetuneError(f"--replay {spec}: {e}") from e
    if n == 0 or weight <= 0:
        raise FinetuneError(f"--replay {spec}: no images to replay (or weight <= 0)")


# ----------------------------------------------------------------------------------------------- evaluation
def click_methods(base: PathLike | None, new: PathLike | None, grabcut: bool = False,
                  device: str | None = None) -> list:
    """train.evaluate method objects named "before" (base weights), "after" (new weights), "grabcut"."""
    from . import evaluate as ev

    methods = []
    for name, path in (("before", base), ("after", new)):
        if path is None:
            continue
        seg, _ = ev.load_segmenter(os.fspath(path), False, device=device)
        m = ev.NetMethod(seg)
        m.name = name
        methods.append(m)
    if grabcut:
        methods.append(ev.GrabCutMethod())
    return methods


def evaluate_methods(methods: list, reader, fully_labelled: bool = True, *, indices: Sequence[int] | None = None,
                     max_segments_per_image: int = 10, max_clicks: int = 20, stop_file: PathLike | None = None,
                     progress: Callable[[float], None] | None = None) -> dict | None:
    """The standard click protocol (train.evaluate.eval_clicks / summarize) for each method on the reader's
    images: {"methods": {name: {noc85, noc90, iou_at_1, ...}}, "n_images", "n_objects", "skipped",
    "per_image"}. Returns None if `stop_file` appears (checked between images)."""
    import numpy as np

    from . import evaluate as ev
    from .sample import DataError

    args = argparse.Namespace(max_segments_per_image=max_segments_per_image, max_clicks=max_clicks)
    indices = list(range(len(reader))) if indices is None else list(indices)
    rng = np.random.default_rng(0)
    per_image, skipped = [], []
    t0 = time.perf_counter()
    for k, i in enumerate(indices):
        if stop_file is not None and os.path.exists(stop_file):
            return None
        try:
            sample = reader[i]
        except DataError as e:
            skipped.append({"index": i, "error": str(e)})
            continue
        rec = {"name": sample.name}
        rec.update(ev.eval_clicks(sample, fully_labelled, methods, rng, args))
        per_image.append(rec)
        if progress is not None:
            progress((k + 1) / len(indices))
    names = [m.name for m in methods]
    return {"methods": ev.summarize("clicks", per_image, names, max_clicks), "n_images": len(per_image),
            "n_objects": sum(len(im["objects"]) for im in per_image), "skipped": skipped,
            "settings": {"max_clicks": max_clicks, "max_segments_per_image": max_segments_per_image},
            "seconds": time.perf_counter() - t0, "per_image": per_image}


def metrics_table(result: dict, title: str = "held-out images") -> str:
    """train.evaluate's click-protocol table for an evaluate_methods() result."""
    from . import evaluate as ev

    table = ev.format_table({"mode": "clicks", "data": {"spec": title}, "n_images": result["n_images"],
                             "n_objects": result["n_objects"], "skipped": result["skipped"],
                             "weights": {"name": "before = base, after = fine-tuned"},
                             "methods": result["methods"], "ratio": {}, "peer_note": None,
                             "settings": {"max_clicks": result["settings"]["max_clicks"], "peer": None}})
    return table


# ----------------------------------------------------------------------------------------------- the run
def _check_out_dir(out: Path, base: Path) -> None:
    bundled = _bundled_weights()
    res = bundled.parent.resolve()
    out_r = out.resolve()
    if out_r == res or res in out_r.parents:
        raise FinetuneError(f"--out {out} is inside {res}: the bundled weights folder is never written by "
                            "fine-tuning; choose another folder")
    target = out / "weights.safetensors"
    for protected in (bundled, base):
        if target.exists() and protected.exists() and os.path.samefile(target, protected):
            raise FinetuneError(f"{target} is the same file as {protected}; fine-tuning would overwrite it")
    if out_r == base.resolve().parent and base.name == "weights.safetensors":
        raise FinetuneError(f"--out {out} holds the base weights {base}; choose another folder")


def finetune(source: PathLike | Callable[[Path], PathLike], out_dir: PathLike | None = None, base_weights: PathLike | None = None,
             steps: int = DEFAULT_STEPS, val_fraction: float = 0.2, crop: int = 256, batch_size: int = 4,
             lr: float = 1e-4, threads: int = 0, workers: int = 1, seed: int = 0, grabcut: bool = False,
             eval_max_objects: int | None = 10, eval_max_clicks: int = 20, log_every: int | None = None,
             val_every: int | None = None, val_examples: int = 32, evaluate: bool = True,
             command: Sequence[str] | None = None, echo: bool = False, replay: Sequence[str] = (),
             freeze_bn: bool = True, anchor: float = DEFAULT_ANCHOR) -> dict:
    """Fine-tune `base_weights` (default: the bundled ones) on `source` (a COCO panoptic JSON, or a function
    that writes an export, see prepare_data) into `out_dir` (default finetune/<timestamp>/ beside the JSON; needed
    with a function); returns the report (also OUT/report.json).
    Cancel by creating OUT/STOP. Raises FinetuneError for unusable input (also recorded in progress.jsonl).
    Against forgetting what the base net knew: BatchNorm statistics stay frozen, weights are pulled towards the
    base (`anchor`, see train.trainer.TrainConfig), and `replay` sources (trainer syntax `kind:path[:weight]`,
    e.g. the photos the base was trained on) are mixed into training when the user has them."""
    t_start = time.time()
    if not callable(source):
        source = Path(source)
        if not source.exists():
            raise FinetuneError(f"{source}: no such COCO panoptic JSON")
        if source.is_dir():
            raise _not_a_json(source)
    elif out_dir is None:
        raise TypeError("finetune: give out_dir when the source is a function")
    out = Path(out_dir) if out_dir is not None else default_out_dir(source)
    _check_out_dir(out, Path(base_weights) if base_weights is not None else _bundled_weights())
    out.mkdir(parents=True, exist_ok=True)
    progress = ProgressWriter(out / PROGRESS_NAME, echo=_echo if echo else None)
    try:
        return _finetune(source, out, progress, t_start, base_weights, steps, val_fraction, crop, batch_size, lr,
                         threads, workers, seed, grabcut, eval_max_objects, eval_max_clicks, log_every,
                         val_every, val_examples, evaluate, command, list(replay), freeze_bn, anchor)
    except Exception as e:
        progress.write({"done": True, "error": f"{type(e).__name__}: {e}" if not isinstance(e, FinetuneError)
                        else str(e)})
        raise


def _echo(record: dict) -> None:
    if record.get("phase") == "train":
        return  # tqdm already shows training on stderr
    if "done" in record:
        return
    print(json.dumps(record), file=sys.stderr, flush=True)


def _finetune(source, out: Path, progress: ProgressWriter, t_start: float, base_weights, steps: int,
              val_fraction: float, crop: int, batch_size: int, lr: float, threads: int, workers: int, seed: int,
              grabcut: bool, eval_max_objects, eval_max_clicks: int, log_every, val_every, val_examples: int,
              evaluate: bool, command, replay: list[str], freeze_bn: bool, anchor: float) -> dict:
    import torch

    from model.weights import load_weights, WeightsError
    from .trainer import TrainConfig, train

    if steps < 1:
        raise FinetuneError(f"--steps must be at least 1, got {steps}")
    if crop % 32:
        raise FinetuneError(f"--crop must be a multiple of 32, got {crop}")
    if not 0 < val_fraction < 1:
        raise FinetuneError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if anchor < 0:
        raise FinetuneError(f"--anchor must be >= 0, got {anchor}")
    replay = [replay_spec(r) for r in replay]
    for spec in replay:
        _check_replay(spec)
    base = Path(base_weights) if base_weights is not None else _bundled_weights()
    if not base.is_file():
        raise FinetuneError(f"base weights {base} not found" + (
            " (no trained weights are bundled yet: pass --base WEIGHTS)" if base_weights is None else ""))
    try:
        load_weights(base)  # fail now, not after the export, if the file does not fit the net
    except WeightsError as e:
        raise FinetuneError(str(e)) from e
    _check_out_dir(out, base)
    if threads:
        torch.set_num_threads(threads)
    stop_file = out / STOP_NAME
    base_sha = sha256_file(base)

    progress.write({"phase": "data", "source": _describe(source)})
    data = prepare_data(source, out / "data", val_fraction)
    progress.write({"phase": "data", "train_images": len(data["train"]), "val_images": len(data["val"])})

    frac = _trainer_fraction(data["train_names"], data["val_names"])
    sources = [_source_spec(data["train_json"], 1.0)]
    if frac > 0:
        # Weight 0: never sampled for training; listed only so the trainer's validation IoU is measured on
        # the held-out images (the trainer's own hash split puts all of them on its validation side).
        sources.append(_source_spec(data["val_json"], 0.0))
    log_every = log_every or max(1, min(10, steps // 50))
    val_every = val_every or max(1, min(200, steps // 5))
    cfg = TrainConfig(sources=sources, out=os.fspath(out), steps=steps, batch_size=batch_size, crop=crop, lr=lr,
                      warmup=min(100, max(1, steps // 10)), val_every=val_every, val_examples=val_examples,
                      ckpt_every=max(1, min(100, steps // 5)), log_every=log_every, workers=workers, seed=seed,
                      init_weights=os.fspath(base), threads=threads, val_fraction=frac, replay=replay,
                      freeze_bn=freeze_bn, anchor=anchor)
    progress.write({"phase": "train", "step": 0, "steps": steps})
    tail = _LogTail(out / "log.csv", steps, progress)
    tail.start()
    t_train = time.time()
    try:
        summary = train(cfg, stop_file=os.fspath(stop_file))
    finally:
        tail.finish()
        # The resume checkpoint (weights + optimiser state: 37 MB for the bundled net) serves no purpose once
        # the run is over: a fine-tune starts afresh from its base each time.
        (out / "checkpoint.pt").unlink(missing_ok=True)
    train_s = time.time() - t_train
    weights = out / "weights.safetensors"
    stopped = bool(summary.get("stopped"))

    evaluation = None
    if evaluate and not stopped:
        from .coco_panoptic import CocoPanopticReader

        progress.write({"phase": "evaluate", "done_fraction": 0.0})
        methods = click_methods(base, weights, grabcut)
        evaluation = evaluate_methods(
            methods, CocoPanopticReader(data["val_json"]), True, max_segments_per_image=eval_max_objects,
            max_clicks=eval_max_clicks, stop_file=stop_file,
            progress=lambda f: progress.write({"phase": "evaluate", "done_fraction": f}))
        if evaluation is None:
            stopped = True
        else:
            _write_json_atomic(out / "evaluation.json", _clean(evaluation))
    metrics = evaluation["methods"] if evaluation else {}
    wall_s = time.time() - t_start

    report = {
        "out": os.path.abspath(out),
        "weights": os.path.abspath(weights),
        "base_weights": os.path.abspath(base),
        "stopped": stopped,
        "steps": steps,
        "steps_done": int(summary.get("steps", 0)),
        "train_val_iou": summary.get("val_iou"),
        "train_images": data["train"],
        "val_images": data["val"],
        "before": metrics.get("before"),
        "after": metrics.get("after"),
        "grabcut": metrics.get("grabcut"),
        "eval_objects": evaluation["n_objects"] if evaluation else 0,
        "min_eval_objects": MIN_EVAL_OBJECTS,
        "eval_settings": evaluation["settings"] if evaluation else None,
        "train_s": train_s,
        "wall_s": wall_s,
    }
    report = _clean(report)
    _write_json_atomic(out / "report.json", report)
    provenance = {
        "weights": os.path.abspath(weights),
        "weights_sha256": sha256_file(weights) if weights.is_file() else None,
        "base_weights": os.path.abspath(base),
        "base_weights_sha256": base_sha,
        "data": {"source": data["source"], "json": data["json"], "train_json": data["train_json"],
                 "val_json": data["val_json"], "image_dir": data["image_dir"], "train_images": data["train"],
                 "val_images": data["val"]},
        "steps": steps,
        "steps_done": report["steps_done"],
        "stopped": stopped,
        "train_config": json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None,
        "wall_s": wall_s,
        "train_s": train_s,
        "metrics": {"before": report["before"], "after": report["after"], "grabcut": report["grabcut"]},
        "command": list(command) if command is not None else None,
        "created": datetime.now().isoformat(timespec="seconds"),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
    }
    _write_json_atomic(out / "provenance.json", _clean(provenance))
    progress.write({"done": True, "stopped": stopped, "report": report})
    return report


# ----------------------------------------------------------------------------------------------- table, CLI
def format_table(report: dict) -> str:
    """The before/after table of a report as text."""
    rows = [("before (base)", report.get("before")), ("after (fine-tuned)", report.get("after")),
            ("GrabCut (reference)", report.get("grabcut"))]
    lines = [f"held-out images: {len(report.get('val_images') or [])}, objects: {report.get('eval_objects', 0)}, "
             f"training images: {len(report.get('train_images') or [])}, "
             f"steps: {report.get('steps_done')}/{report.get('steps')}"
             + (" (stopped: no measurement)" if report.get("stopped") else ""),
             *([too_few_objects_text(report)] if too_few_objects(report) else []),
             f"{'method':<22}{'NoC@90':>8}{'NoC@85':>8}{'IoU@1':>8}{'fails@90':>10}"]
    for name, m in rows:
        if m:
            lines.append(f"{name:<22}{_fmt(m.get('noc90'), 2):>8}{_fmt(m.get('noc85'), 2):>8}"
                         f"{_fmt(m.get('iou_at_1'), 3):>8}{_fmt(m.get('fails_at_90'), 0):>10}")
    return "\n".join(lines)


def too_few_objects(report: dict) -> bool:
    """Whether a measured report's held-out objects are too few for its before/after difference to mean anything."""
    measured = report.get("before") is not None or report.get("after") is not None
    return measured and (report.get("eval_objects") or 0) < report.get("min_eval_objects", MIN_EVAL_OBJECTS)


def too_few_objects_text(report: dict) -> str:
    n = report.get("eval_objects") or 0
    return (f"Warning: only {n} held-out object{'s' if n != 1 else ''} measured (fewer than "
            f"{report.get('min_eval_objects', MIN_EVAL_OBJECTS)}): too few to tell whether the new weights are "
            "better or worse; a difference this small a sample shows is mostly chance. Label more images.")


def _fmt(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a COCO panoptic JSON (its PNG folder beside it), e.g. written by `python main.py "
                                  "export panoptic PROJECT`; `python main.py finetune PROJECT` exports a project "
                                  "and fine-tunes on that")
    p.add_argument("--out", help="output folder (default finetune/<timestamp>/ beside the JSON)")
    p.add_argument("--base", help="weights to start from (default: the bundled resources/pointer_seg.safetensors)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of labelled images held out (>= 1)")
    p.add_argument("--crop", type=int, default=256, help="training crop side, a multiple of 32")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--workers", type=int, default=1, help="data loader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grabcut", action="store_true", help="also measure GrabCut on the held-out images")
    p.add_argument("--eval-max-objects", type=int, default=10,
                   help="objects measured per held-out image: the largest ones of at least 1%% of the image "
                        "(0 = all of those)")
    p.add_argument("--eval-max-clicks", type=int, default=20)
    p.add_argument("--no-eval", action="store_true", help="skip the before/after measurement")
    p.add_argument("--replay", nargs="+", default=[], metavar="SPEC",
                   help="data the base learned from, mixed into training so it is not forgotten: a folder "
                        "with images/ + masks/ (or labels/), a COCO panoptic JSON, or kind:path[:weight] as in "
                        "`python -m train --sources`")
    p.add_argument("--anchor", type=float, default=DEFAULT_ANCHOR,
                   help="pull towards the base weights per step, times the learning rate (0 = off)")
    p.add_argument("--train-bn", action="store_true",
                   help="let BatchNorm statistics adapt (default: frozen at the base's, which forgets less)")
    return p


def build_command(source_json: PathLike, out_dir: PathLike, **options: Any) -> list[str]:
    """argv to run fine-tuning as a separate process (subprocess.Popen(cmd)); options are finetune()'s
    command-line options by keyword: base, steps, val_fraction, crop, batch_size, lr, threads, workers, seed,
    grabcut, eval_max_objects, eval_max_clicks, no_eval. Progress: OUT/progress.jsonl; cancel: OUT/STOP."""
    known = {a.dest: a for a in build_parser()._actions if a.option_strings}
    cmd = [sys.executable, "-m", "train", "finetune", os.fspath(source_json), "--out", os.fspath(out_dir)]
    for key, value in options.items():
        action = known.get(key)
        if action is None or key in ("help", "out"):
            raise TypeError(f"build_command: unknown option {key!r}")
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                cmd.append(flag)
        elif isinstance(value, (list, tuple)):
            if value:
                cmd += [flag, *(os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value)]
        elif value is not None:
            cmd += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return cmd


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = build_parser().parse_args(argv)
    return run_parsed(a, a.source, [sys.executable, "-m", "train", "finetune", *argv])


def run_parsed(a: argparse.Namespace, source, command: Sequence[str]) -> int:
    """Run finetune() with the options of build_parser()'s namespace `a` on `source` (a JSON path or an export
    function, see prepare_data); print the table. Exit status: 0, or 2 with the reason on stderr."""
    from model.weights import WeightsError
    from .sample import DataError

    try:
        report = finetune(source, a.out, base_weights=a.base, steps=a.steps, val_fraction=a.val_fraction,
                          crop=a.crop, batch_size=a.batch_size, lr=a.lr, threads=a.threads, workers=a.workers,
                          seed=a.seed, grabcut=a.grabcut, eval_max_objects=a.eval_max_objects or None,
                          eval_max_clicks=a.eval_max_clicks, evaluate=not a.no_eval, command=list(command),
                          echo=True, replay=a.replay, freeze_bn=not a.train_bn, anchor=a.anchor)
    except (FinetuneError, DataError, WeightsError) as e:
        print(f"finetune: error: {e}", file=sys.stderr)
        return 2
    print(format_table(report))
    print(f"weights: {report['weights']}\nreport: {Path(report['out']) / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
