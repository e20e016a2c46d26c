"""Headless batch mode: auto-segment every image of a folder and write a COCO panoptic export. No Qt here.

    run_auto(images_dir, out_dir, segmenter=None, progress=True, category_name="segment") -> str

Used by ``python main.py auto IMAGES_DIR --out OUT_DIR``. For each image file directly in ``images_dir`` (sorted by
name) it calls ``segmenter.segment_image(image)`` (``segmenter=None`` loads ``model.Segmenter.from_pretrained()``)
and keeps the result in ``out_dir/work/<image file name>.png`` (COCO panoptic id encoding, written atomically) as
soon as the image is done; a re-run skips the images that already have a result there, so an interrupted run
resumes where it stopped (delete ``out_dir/work`` to start over). Unreadable images, and images above
``train.readers.MAX_PIXELS`` (refused from their header, so memory stays bounded), are skipped with a message
(logged and printed to stderr) and listed in the JSON's extra key ``"skipped"`` ([{"file_name", "reason"}]).
While it writes, the run holds ``out_dir``'s project lock (annotator.project_lock): a second writer into the same
folder gets ProjectLockedError naming this one (``main.py auto`` then exits with code 2).

Output: ``out_dir/panoptic.json`` + ``out_dir/panoptic/*.png`` (see annotator.coco_io), with one category
``segment`` (id 1). It is a thing category (isthing 1): the segments are class-agnostic regions, several per
image, and COCO panoptic allows only one segment per stuff category per image. The ``"image_dir"`` key points at
``images_dir`` so the GUI opens the output for correction with ``annotator.coco_io.import_coco_panoptic``.
Returns the path of panoptic.json.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Union

import numpy as np

from annotator.coco_io import PanopticImage, write_coco_panoptic
from annotator.document import (Category, ProjectError, atomic_write_bytes, encode_id_png, list_images,
                                lock_project_dir, no_images_message, read_id_png, read_image_checked)

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
WORK_DIR = "work"


def _say(msg: str, bar=None) -> None:
    """A visible message that does not garble the progress bar, shown once (logged at INFO: Python's last-resort
    handler prints WARNINGs to stderr too, which doubled every line)."""
    log.info(msg)
    if bar is not None:
        bar.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Renumber the segmenter's ids to 1..n (<= 0 means unassigned)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.int32)
    pos = labels > 0
    if pos.any():
        _, inv = np.unique(labels[pos], return_inverse=True)
        out[pos] = inv.astype(np.int32) + 1
    return out


def run_auto(images_dir: PathLike, out_dir: PathLike, segmenter=None, progress: bool = True,
             category_name: str = "segment") -> str:
    """Auto-segment every image in ``images_dir`` into a COCO panoptic export in ``out_dir`` (see module doc).

    Resumable; unreadable images (and images above train.readers.MAX_PIXELS) are skipped with a message.
    Returns the path of ``out_dir/panoptic.json``. Holds ``out_dir``'s project lock while it writes there: raises
    ProjectLockedError naming the holder if another process (an annotator, another batch run) holds it.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: not a folder of images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_project_dir(out_dir)  # one writer: two runs into one folder would mix their results
    try:
        return _run_auto_locked(images_dir, out_dir, segmenter, progress, category_name)
    finally:
        lock.release()


def _run_auto_locked(images_dir: Path, out_dir: Path, segmenter, progress: bool, category_name: str) -> str:
    from tqdm import tqdm

    work = out_dir / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    paths = list_images(images_dir)
    if not paths:  # a wrong folder, not an empty result: say where the images are instead of exporting nothing
        raise ProjectError(no_images_message(images_dir))

    skipped: list[dict] = []
    done: list[tuple[str, int, int, Path]] = []
    bar = tqdm(paths, desc="auto-segment", unit="img", disable=not progress)
    for p in bar:
        name = os.path.basename(p)
        result = work / f"{name}.png"
        if result.is_file():
            try:
                labels = read_id_png(result)
                done.append((name, labels.shape[1], labels.shape[0], result))
                continue
            except ProjectError:  # left half-written by something else: redo it
                _say(f"redoing {name}: its saved result {result} is unreadable", bar)
        try:
            image = read_image_checked(p)  # refuses, before decoding, an image too large to hold in memory
        except ProjectError as e:
            reason = str(e)
            reason = reason[len(p) + 2:] if reason.startswith(f"{p}: ") else reason
            _say(f"skipped {p}: {reason}", bar)
            skipped.append({"file_name": name, "reason": reason})
            continue
        if segmenter is None:
            from model import Segmenter  # deferred: loading the net is slow and not needed when all is done
            segmenter = Segmenter.from_pretrained()
        labels = _compact(segmenter.segment_image(image))
        if labels.shape != image.shape[:2]:
            reason = f"segmenter returned a {labels.shape} map for a {image.shape[:2]} image"
            _say(f"skipped {p}: {reason}", bar)
            skipped.append({"file_name": name, "reason": reason})
            continue
        atomic_write_bytes(result, encode_id_png(labels))  # this image is now done even if the run dies
        done.append((name, image.shape[1], image.shape[0], result))
    bar.close()

    def gen():
        for name, w, h, result in done:
            labels = read_id_png(result)
            yield PanopticImage(name, w, h, labels, {int(i): (1, False) for i in np.unique(labels) if i > 0})

    category = Category(1, category_name, (220, 120, 60), True)
    json_path = write_coco_panoptic(out_dir, gen(), [category], image_dir=images_dir.resolve(),
                                    extra={"skipped": skipped})
    msg = f"auto-segmented {len(done)} of {len(paths)} images into {json_path}"
    if skipped:
        msg += f"; skipped {len(skipped)}: " + ", ".join(s["file_name"] for s in skipped)
    log.info(msg)
    if progress:
        print(msg, file=sys.stderr)
    return json_path
