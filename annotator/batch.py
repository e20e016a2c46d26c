"""Headless batch mode: auto-segment every image of a folder and write a COCO panoptic export. No Qt here.

    run_auto(images_dir, out_dir, segmenter=None, progress=True, category_name="segment", shard=None) -> str

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

Shards (``shard=(K, N)``, ``main.py auto ... --shard K/N``): the run takes only the images whose file name falls
in part K of N (:func:`shard_of`: a SHA-1 hash of the name, not its place in the sorted list, so an image stays in
its part when images are added to or removed from the folder, and a resumed task redoes nothing another did),
in name order. N tasks with K = 1..N (a Slurm job array, a Kubernetes indexed job) each write their own
``--out``, and together cover every image exactly once; ``main.py merge`` (annotator.coco_io.merge_coco_panoptic)
joins their exports into one. The JSON then records ``"shard": "K/N"``; a part may be empty on a small folder.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Union

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


def shard_of(file_name: str, shards: int) -> int:
    """The part (1..shards) of an image file name: from a SHA-1 hash of the name alone (see the module doc)."""
    return int.from_bytes(hashlib.sha1(file_name.encode("utf-8")).digest()[:8], "big") % shards + 1


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N; ValueError with the reason otherwise."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be K/N, e.g. 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def run_auto(images_dir: PathLike, out_dir: PathLike, segmenter=None, progress: bool = True,
             category_name: str = "segment", shard: Optional[tuple[int, int]] = None) -> str:
    """Auto-segment every image in ``images_dir`` into a COCO panoptic export in ``out_dir`` (see module doc).

    Resumable; unreadable images (and images above train.readers.MAX_PIXELS) are skipped with a message.
    Returns the path of ``out_dir/panoptic.json``. Holds ``out_dir``'s project lock while it writes there: raises
    ProjectLockedError naming the holder if another process (an annotator, another batch run) holds it.
    ``shard=(K, N)``: only part K of N of the images (see the module doc).
    """
    if shard is not None and not 1 <= shard[0] <= shard[1]:
        raise ValueError(f"shard {shard[0]}/{shard[1]}: needs 1 <= K <= N")
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: not a folder of images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_project_dir(out_dir)  # one writer: two runs into one folder would mix their results
    try:
        return _run_auto_locked(images_dir, out_dir, segmenter, progress, category_name, shard)
    finally:
        lock.release()


def _run_auto_locked(images_dir: Path, out_dir: Path, segmenter, progress: bool, category_name: str,
                     shard: Optional[tuple[int, int]]) -> str:
    from tqdm import tqdm

    work = out_dir / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    paths = list_images(images_dir)
    if not paths:  # a wrong folder, not an empty result: say where the images are instead of exporting nothing
        raise ProjectError(no_images_message(images_dir))
    in_folder = len(paths)
    if shard is not None:
        paths = [p for p in paths if shard_of(os.path.basename(p), shard[1]) == shard[0]]

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
    extra: dict = {"skipped": skipped}
    if shard is not None:
        extra["shard"] = f"{shard[0]}/{shard[1]}"
    json_path = write_coco_panoptic(out_dir, gen(), [category], image_dir=images_dir.resolve(), extra=extra)
    msg = f"auto-segmented {len(done)} of {len(paths)} images into {json_path}"
    if shard is not None:
        msg += f" (part {shard[0]} of {shard[1]}; {in_folder} images in the folder)"
    if skipped:
        msg += f"; skipped {len(skipped)}: " + ", ".join(s["file_name"] for s in skipped)
    log.info(msg)
    if progress:
        print(msg, file=sys.stderr)
    return json_path


# ------------------------------------------------------------------ one image's segmentation, to review
def project_for_image(image_path: PathLike, project_dir: PathLike):
    """(project, image index) for ``main.py segment IMAGE --project-dir DIR``: the project in ``project_dir``
    opened for writing (ProjectLockedError names the holder, e.g. an open annotator window), or a new one made
    there for the image (as ``main.py IMAGE --project-dir DIR`` makes it). ProjectError if an existing project
    does not hold the image; nothing is changed then."""
    from annotator.document import PROJECT_FILE, Project

    project_dir = Path(project_dir)
    if not (project_dir / PROJECT_FILE).is_file():
        project = Project.new([image_path], project_dir)
        if not project.images:
            project.close()
            raise ProjectError("; ".join(project.skipped) or f"{image_path}: not a readable image")
        return project, 0
    project = Project.open(project_dir)
    for k, e in enumerate(project.images):
        try:
            if os.path.samefile(e.path, image_path):
                return project, k
        except OSError:  # an image of the project that is gone
            continue
    project.close()
    raise ProjectError(f"{image_path} is not an image of the project in {project_dir}; nothing was changed "
                       "(choose another --project-dir, or open that project in the annotator)")


def queue_proposals(project, image_index: int, labels: np.ndarray) -> str:
    """Queue a full-image segmentation (``Segmenter.segment_image``'s label map) as the image's auto-segment
    proposals, which the annotator puts up for review when it opens the image. Accepted segments are never
    changed: the proposals keep only unlabelled pixels. Proposals queued earlier and not reviewed yet (machine
    output, recomputed here) are replaced. Returns a line saying what was done."""
    labels = _compact(labels)
    entry = project.images[image_index]
    if labels.shape != (entry.height, entry.width):
        raise ProjectError(f"segmenter returned a {labels.shape} map for a {entry.height}x{entry.width} image")
    free = entry.unlabelled_mask()
    masks = [m for m in (free & (labels == k) for k in range(1, int(labels.max()) + 1)) if m.any()]
    before = len(project.proposals(image_index))
    project.set_proposals(image_index, masks)
    text = f"{len(masks)} auto-segment proposals queued for review in {project.project_dir}"
    if before:
        text += f" (replacing {before} not reviewed yet)"
    if entry.segments:
        text += f"; its {len(entry.segments)} accepted segments are kept"
    return text
