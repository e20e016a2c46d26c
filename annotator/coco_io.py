"""COCO panoptic / instance export, COCO panoptic import and a validity check. No Qt here.

Export layout (the official COCO panoptic layout, readable unchanged by train/coco_panoptic.py)::

    out_dir/panoptic.json     images, annotations, categories (+ "image_dir", see below)
    out_dir/panoptic/*.png    one PNG per image, segment id = R + 256 G + 256^2 B, 0 = unlabelled;
                              named as annotations[].file_name

Images are not copied. ``images[].file_name`` is the image's path relative to one image folder (normally just its
base name) and that folder's absolute path is written as the extra top-level key ``"image_dir"``; readers that do
not know the key pass the image folder themselves, as with the official COCO files. Segment ids are the project's
segment ids (unique per image), category ids the project's category ids, image ids 1..N in project order.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from annotator.document import (Category, ImageEntry, Project, ProjectError, Segment, atomic_write_bytes,
                                default_color, encode_id_png, ids_to_rgb, read_id_png, rgb_to_ids)
from annotator import project_lock
from annotator.staging import Progress, StagedOutput, report

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
__all__ = ["export_coco_panoptic", "export_coco_instances", "import_coco_panoptic", "validate_coco_panoptic",
           "write_coco_panoptic", "merge_coco_panoptic", "segment_stats", "segment_areas", "rgb_to_ids", "ids_to_rgb",
           "PanopticImage"]


# ----------------------------------------------------------------------------------------------- helpers
def segment_stats(labels: np.ndarray) -> dict[int, tuple[int, list[int]]]:
    """{segment id: (area, [x, y, w, h])} for every non-zero id of a label map.

    Works on the runs of equal ids along each row, not on pixels: a segment's area is the sum of its runs' lengths
    and its box spans their rows and ends. A 12 MP map of a few dozen segments has about a hundred thousand runs,
    so only those are sorted (0.95 -> 0.12 s for such a map, bench/export_stats.py); a map of noise is no slower than sorting
    its pixels."""
    h, w = labels.shape
    if labels.size == 0:
        return {}
    run_start = np.empty((h, w), bool)
    run_start[:, 0] = True
    np.not_equal(labels[:, 1:], labels[:, :-1], out=run_start[:, 1:])
    run_end = np.empty((h, w), bool)
    run_end[:, -1] = True
    run_end[:, :-1] = run_start[:, 1:]
    ys, x0s = np.nonzero(run_start)
    x1s = np.nonzero(run_end)[1]  # the same runs in the same (row-major) order
    ids = labels[ys, x0s]
    labelled = ids != 0
    if not labelled.any():
        return {}
    order = np.argsort(ids[labelled], kind="stable")
    ids, ys, x0s, x1s = (a[labelled][order] for a in (ids, ys, x0s, x1s))
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    areas = np.add.reduceat(x1s - x0s + 1, starts)
    y0 = np.minimum.reduceat(ys, starts)
    y1 = np.maximum.reduceat(ys, starts)
    x0 = np.minimum.reduceat(x0s, starts)
    x1 = np.maximum.reduceat(x1s, starts)
    return {int(ids[s]): (int(a), [int(a0), int(b0), int(a1 - a0 + 1), int(b1 - b0 + 1)])
            for s, a, a0, b0, a1, b1 in zip(starts, areas, x0, y0, x1, y1)}


def segment_areas(labels: np.ndarray, ids) -> dict[int, int]:
    """{segment id: pixel count} for the given ids (0 if absent): a counting pass, no sort, so the segment list of
    a 24-megapixel scan refreshes in tens of milliseconds. Large ids (imported COCO, up to 2^24) are compacted to
    the ids asked for, so no table of 16 million counts is built."""
    ids = sorted({int(i) for i in ids if int(i) > 0})
    if not ids or labels.size == 0:
        return {i: 0 for i in ids}
    flat = labels.ravel()
    top = int(flat.max())
    if 0 <= int(flat.min()) and top < 1 << 16:
        counts = np.bincount(flat, minlength=max(top, ids[-1]) + 1)
        return {i: int(counts[i]) for i in ids}
    keys = np.asarray(ids, np.int64)
    rows = np.minimum(np.searchsorted(keys, flat), len(keys) - 1)
    counts = np.bincount(rows[keys[rows] == flat], minlength=len(keys))
    return {i: int(c) for i, c in zip(ids, counts)}


class PanopticImage:
    """One image to write: its file name (relative to the image folder), size, label map and segment records."""

    def __init__(self, file_name: str, width: int, height: int, labels: np.ndarray,
                 segments: dict[int, tuple[int, bool]]):
        self.file_name = file_name
        self.width = width
        self.height = height
        self.labels = labels          # HxW int, 0 = unlabelled
        self.segments = segments      # {segment id: (category_id, iscrowd)}


def _category_json(c: Category) -> dict:
    return {"id": c.id, "name": c.name, "supercategory": c.name, "isthing": int(bool(c.isthing)),
            "color": list(c.color)}


def _png_name(file_name: str, used: set) -> str:
    """PNG name for an image: its stem (sub-folders joined by '__'), made unique."""
    stem = os.path.splitext(file_name.replace("\\", "/"))[0].replace("/", "__")
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "image"
    name, k = f"{stem}.png", 1
    while name in used:
        k += 1
        name = f"{stem}_{k}.png"
    used.add(name)
    return name


def _merge_stuff(im: PanopticImage, stuff: set) -> PanopticImage:
    """COCO panoptic allows one segment per stuff category per image: the segments of each stuff category are
    merged into the one with the smallest id (never a crowd: crowd is for things)."""
    groups: dict[int, list[int]] = {}
    for sid, (cat, _) in im.segments.items():
        if cat in stuff:
            groups.setdefault(cat, []).append(sid)
    remap = {sid: min(ids) for ids in groups.values() if len(ids) > 1 for sid in ids if sid != min(ids)}
    if not remap and not any(im.segments[min(ids)][1] for ids in groups.values()):
        return im
    labels = im.labels
    if remap:
        ids, inverse = np.unique(labels, return_inverse=True)
        labels = np.array([remap.get(int(i), int(i)) for i in ids], labels.dtype)[inverse].reshape(labels.shape)
    segments = {sid: (cat, crowd and cat not in stuff) for sid, (cat, crowd) in im.segments.items()
                if sid not in remap}
    return PanopticImage(im.file_name, im.width, im.height, labels, segments)


def write_coco_panoptic(out_dir: PathLike, images: Iterable[PanopticImage], categories: Sequence[Category],
                        image_dir: Optional[PathLike] = None, extra: Optional[dict] = None,
                        progress: Optional[Progress] = None, total: int = 0) -> str:
    """Write ``out_dir/panoptic.json`` and ``out_dir/panoptic/*.png`` from ``images`` (consumed one at a time, so
    label maps need not all be in memory). Segments with no pixel are left out. Returns the JSON path.
    ``progress(done, total)`` is told before each image and may cancel (annotator.staging): the files appear in
    ``out_dir`` only when every image is written, so a cancelled or failed export leaves it as it was."""
    with StagedOutput(out_dir) as staged:
        return _write_coco_panoptic(staged, images, categories, image_dir, extra, progress, total)


def _write_coco_panoptic(staged: StagedOutput, images: Iterable[PanopticImage], categories: Sequence[Category],
                         image_dir: Optional[PathLike], extra: Optional[dict], progress: Optional[Progress],
                         total: int) -> str:
    images_json, anns, used = [], [], set()
    stuff = {c.id for c in categories if not c.isthing}
    report(progress, 0, total)
    for image_id, im in enumerate(images, 1):
        if im.labels.shape != (im.height, im.width):
            raise ValueError(f"label map of {im.file_name} is {im.labels.shape}, image is {im.height}x{im.width}")
        im = _merge_stuff(im, stuff)
        png = _png_name(im.file_name, used)
        atomic_write_bytes(staged.path(f"panoptic/{png}"), encode_id_png(im.labels))
        stats = segment_stats(im.labels)
        unknown = set(stats) - set(im.segments)
        if unknown:
            raise ValueError(f"label map of {im.file_name} has segment ids {sorted(unknown)[:10]} with no record")
        infos = []
        for sid in sorted(stats):
            cat, crowd = im.segments[sid]
            area, bbox = stats[sid]
            infos.append({"id": sid, "category_id": int(cat), "area": area, "bbox": bbox, "iscrowd": int(crowd)})
        images_json.append({"id": image_id, "file_name": im.file_name, "width": im.width, "height": im.height})
        anns.append({"image_id": image_id, "file_name": png, "segments_info": infos})
        report(progress, image_id, max(total, image_id))
    data = {
        "info": {"description": "exported by pointer-annotator", "version": "1.0"},
        "licenses": [],
        "images": images_json,
        "annotations": anns,
        "categories": [_category_json(c) for c in categories],
    }
    if image_dir is not None:
        data["image_dir"] = os.path.abspath(os.fspath(image_dir))
    if extra:
        data.update(extra)
    atomic_write_bytes(staged.path("panoptic.json"), json.dumps(data).encode("utf-8"))
    return os.fspath(staged.final("panoptic.json"))


def _image_dir_and_names(project: Project, image_dir: Optional[PathLike]) -> tuple[str, list[str]]:
    paths = [os.path.abspath(e.path) for e in project.images]
    if image_dir is None:
        dirs = {os.path.dirname(p) for p in paths}
        image_dir = os.path.commonpath(list(dirs)) if dirs else os.fspath(project.project_dir)
    image_dir = os.path.abspath(os.fspath(image_dir))
    names = []
    for p in paths:
        rel = os.path.relpath(p, image_dir)
        if rel.startswith(".."):
            raise ValueError(f"image {p} is not inside the image folder {image_dir}")
        names.append(rel.replace(os.sep, "/"))
    return image_dir, names


# ----------------------------------------------------------------------------------------------- export
def export_coco_panoptic(project: Project, out_dir: PathLike, image_dir: Optional[PathLike] = None,
                         progress: Optional[Progress] = None) -> str:
    """Export the project as COCO panoptic into ``out_dir`` (see the module docstring); returns the JSON path.

    ``image_dir`` defaults to the folder that holds all the project's images (their common folder).
    ``progress(done, total)`` may cancel (annotator.staging.Cancelled); ``out_dir`` is then left as it was.
    """
    image_dir, names = _image_dir_and_names(project, image_dir)

    def gen() -> Iterator[PanopticImage]:
        for e, name in zip(project.images, names):
            was_loaded = e.is_loaded
            labels = e.labels
            yield PanopticImage(name, e.width, e.height, labels,
                                {s.id: (s.category_id, s.iscrowd) for s in e.segments.values()})
            if not was_loaded:
                e.unload()  # keep memory flat on big projects

    return write_coco_panoptic(out_dir, gen(), project.categories, image_dir, progress=progress,
                               total=len(project.images))


def export_coco_instances(project: Project, out_path: PathLike, image_dir: Optional[PathLike] = None,
                          progress: Optional[Progress] = None) -> str:
    """Write COCO instance annotations (RLE masks via pycocotools) of the thing-category segments; returns path.

    Image ids and file names are the same as in ``export_coco_panoptic``; annotation ids run 1..N.
    ``progress(done, total)`` may cancel (annotator.staging.Cancelled); nothing is written then.
    """
    from pycocotools import mask as mask_utils

    image_dir, names = _image_dir_and_names(project, image_dir)
    things = {c.id for c in project.categories if c.isthing}
    images_json, anns = [], []
    for image_id, (e, name) in enumerate(zip(project.images, names), 1):
        report(progress, image_id - 1, len(names))
        images_json.append({"id": image_id, "file_name": name, "width": e.width, "height": e.height})
        segs = [s for s in sorted(e.segments.values(), key=lambda s: s.id) if s.category_id in things]
        if not segs:
            continue
        was_loaded = e.is_loaded
        labels = e.labels
        for s in segs:
            m = np.asfortranarray((labels == s.id).astype(np.uint8))
            rle = mask_utils.encode(m)
            area = int(mask_utils.area(rle))
            if area == 0:
                continue
            bbox = [float(v) for v in mask_utils.toBbox(rle)]
            rle["counts"] = rle["counts"].decode("ascii")
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": s.category_id,
                         "segmentation": rle, "area": area, "bbox": bbox, "iscrowd": int(s.iscrowd)})
        if not was_loaded:
            e.unload()
    report(progress, len(names), len(names))
    data = {"info": {"description": "exported by pointer-annotator", "version": "1.0"}, "licenses": [],
            "images": images_json, "annotations": anns,
            "categories": [_category_json(c) for c in project.categories if c.isthing],
            "image_dir": image_dir}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_path, json.dumps(data).encode("utf-8"))
    return os.fspath(out_path)


# ----------------------------------------------------------------------------------------------- import
def _load_json(json_path: Path) -> dict:
    try:
        data = json.loads(json_path.read_bytes().decode("utf-8"))
    except FileNotFoundError as e:
        raise ProjectError(f"{json_path}: file not found") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProjectError(f"{json_path}: not a readable JSON file ({e})") from e
    if not isinstance(data, dict):
        raise ProjectError(f"{json_path}: top level must be a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ProjectError(f"{json_path}: '{key}' must be a list (is this a COCO panoptic file?)")
    return data


def _default_png_dir(json_path: Path) -> Path:
    """The official layout: PNGs in a folder named as the JSON's stem, next to it."""
    return json_path.with_suffix("")


def import_coco_panoptic(json_path: PathLike, image_dir: Optional[PathLike] = None,
                         project_dir: Optional[PathLike] = None, png_dir: Optional[PathLike] = None,
                         progress: Optional[Progress] = None) -> Project:
    """Build and save a Project from a COCO panoptic JSON + PNG folder (e.g. a batch-mode output).

    png_dir: default the folder named as the JSON's stem next to it (panoptic.json -> panoptic/).
    image_dir: default the JSON's "image_dir" key (absolute or relative to the JSON's folder), else an "images" folder next to the JSON, else the JSON's
    folder. project_dir: default ``<json folder>/project``; must not hold a project already.
    Segment and category ids are kept. Raises ProjectError naming the file on malformed input.
    ``progress(done, total)`` counts each image twice (checked, then written) and may cancel
    (annotator.staging.Cancelled): what the import wrote is removed, and no project is left behind.
    """
    json_path = Path(json_path)
    data = _load_json(json_path)
    png_dir = Path(png_dir) if png_dir is not None else _default_png_dir(json_path)
    if image_dir is None:
        cand = data.get("image_dir")  # absolute, or relative to the JSON's folder
        if isinstance(cand, str) and (json_path.parent / cand).is_dir():
            image_dir = json_path.parent / cand
        elif (json_path.parent / "images").is_dir():
            image_dir = json_path.parent / "images"
        else:
            image_dir = json_path.parent
    image_dir = Path(image_dir).resolve()
    project_dir = Path(project_dir) if project_dir is not None else json_path.parent / "project"
    if (project_dir / "project.json").exists():
        raise ProjectError(f"{project_dir / 'project.json'}: a project already exists there; open it instead")

    categories = []
    for k, c in enumerate(data["categories"]):
        try:
            color = tuple(int(v) for v in c.get("color") or default_color(k))
            categories.append(Category(int(c["id"]), str(c["name"]), color, bool(c.get("isthing", 1))))
        except (KeyError, TypeError, ValueError) as e:
            raise ProjectError(f"{json_path}: categories[{k}] is malformed ({e!r})") from e
    cat_ids = {c.id for c in categories}
    anns = {}
    for k, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or "image_id" not in a or not isinstance(a.get("segments_info"), list):
            raise ProjectError(f"{json_path}: annotations[{k}] needs image_id, file_name and segments_info")
        anns[a["image_id"]] = a

    staged = []  # (entry, labels) checked before anything is written
    seen_ids: set = set()
    total = 2 * len(data["images"])
    report(progress, 0, total)
    for k, im in enumerate(data["images"]):
        try:
            iid, fname, w, h = im["id"], str(im["file_name"]), int(im["width"]), int(im["height"])
        except (KeyError, TypeError, ValueError) as e:
            raise ProjectError(f"{json_path}: images[{k}] needs id, file_name, width, height ({e!r})") from e
        if iid in seen_ids:
            raise ProjectError(f"{json_path}: image id {iid!r} is used twice (images[{k}])")
        seen_ids.add(iid)
        if w <= 0 or h <= 0:
            raise ProjectError(f"{json_path}: images[{k}] has a non-positive size {w}x{h}")
        _check_inside(json_path, f"images[{k}].file_name", fname)
        entry = ImageEntry(os.fspath(image_dir / fname), w, h)
        ann = anns.get(iid)
        labels = png = None
        if ann is not None and ann["segments_info"]:
            png_name = str(ann.get("file_name", Path(fname).stem + ".png"))
            _check_inside(json_path, f"the annotation file_name of image {iid}", png_name)
            png = png_dir / png_name
            labels = read_id_png(png)
            if labels.shape != (h, w):
                raise ProjectError(f"{png}: PNG is {labels.shape[1]}x{labels.shape[0]}, images[{k}] says {w}x{h}")
            for s in ann["segments_info"]:
                try:
                    sid, cid = int(s["id"]), int(s["category_id"])
                except (KeyError, TypeError, ValueError) as e:
                    raise ProjectError(f"{json_path}: segments_info of image {iid} is malformed ({e!r})") from e
                if cid not in cat_ids:
                    raise ProjectError(f"{json_path}: image {iid} segment {sid} has unknown category {cid}")
                if sid in entry.segments or sid <= 0:
                    raise ProjectError(f"{json_path}: image {iid} has a duplicate or invalid segment id {sid}")
                entry.segments[sid] = Segment(sid, cid, bool(s.get("iscrowd", 0)))
            present = set(np.unique(labels).tolist())
            unknown = present - set(entry.segments) - {0}
            if unknown:
                raise ProjectError(f"{png}: ids {sorted(unknown)[:10]} are not in segments_info of image {iid}")
            absent = set(entry.segments) - present
            if absent:
                # A listed segment with no pixel means the JSON and the PNG do not belong together.
                raise ProjectError(f"{json_path}: segments {sorted(absent)[:10]} of image {iid} have no pixel in {png}")
        staged.append((entry, png))
        labels = None
        report(progress, k + 1, total)

    made_dir = not project_dir.exists()
    had_lock_file = (project_dir / project_lock.LOCK_FILE).exists()
    project_dir.mkdir(parents=True, exist_ok=True)
    proj = Project(project_dir, [e for e, _ in staged], categories)
    labels_dir = proj.project_dir / "labels"
    made_labels_dir = not labels_dir.exists()
    written: list[Path] = []
    try:
        for i, (entry, png) in enumerate(staged):
            if png is not None:
                # written one at a time and dropped, so importing a big data set does not hold every map in memory
                labels = read_id_png(png)
                labels_dir.mkdir(exist_ok=True)
                stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(entry.path).stem)[:80]
                proj._gen += 1
                rel = f"labels/{i:05d}_{stem}_g{proj._gen}.png"
                written.append(proj.project_dir / rel)
                atomic_write_bytes(proj.project_dir / rel, encode_id_png(labels))
                entry.label_file, entry._labelled_pixels = rel, int(np.count_nonzero(labels))
            report(progress, len(staged) + i + 1, total)
        for e in proj.images:
            if not os.path.isfile(e.path):
                proj.warnings.append(f"image file {e.path} is missing")
        proj.save()
    except BaseException:
        # Cancelled, a full disk, ...: no half-made project is left (and its lock is released).
        proj._abandon()
        if not had_lock_file:
            (project_dir / project_lock.LOCK_FILE).unlink(missing_ok=True)
        for f in written:
            f.unlink(missing_ok=True)
        if made_labels_dir:
            shutil.rmtree(labels_dir, ignore_errors=True)
        if made_dir:
            shutil.rmtree(project_dir, ignore_errors=True)
        raise
    return proj


def _check_inside(json_path: Path, what: str, name: str) -> None:
    """File names in a COCO file are relative to their folder: an absolute path or '..' would make an import read
    (or, later, export over) files elsewhere on the disk."""
    parts = Path(name.replace("\\", "/")).parts
    if os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in parts or not name.strip():
        raise ProjectError(f"{json_path}: {what} {name!r} must be a relative path inside its folder "
                           "(no absolute path, no '..')")


# ----------------------------------------------------------------------------------------------- validation
def validate_coco_panoptic(json_path: PathLike, png_dir: Optional[PathLike] = None) -> list[str]:
    """Problems found in a COCO panoptic JSON + PNG folder; empty when valid.

    Checks: structure, unique image / category ids, one annotation per image, PNG present and of the image's
    size, segment ids unique and non-zero per image, every non-zero PNG id listed in segments_info and vice
    versa, known category ids, area and bbox equal to the PNG's, at most one segment per stuff category.
    """
    json_path = Path(json_path)
    try:
        data = _load_json(json_path)
    except ProjectError as e:
        return [str(e)]
    png_dir = Path(png_dir) if png_dir is not None else _default_png_dir(json_path)
    problems: list[str] = []
    cat_ids = [c.get("id") for c in data["categories"] if isinstance(c, dict)]
    stuff_ids = {c.get("id") for c in data["categories"] if isinstance(c, dict) and c.get("isthing", 1) == 0}
    if len(set(cat_ids)) != len(cat_ids) or len(cat_ids) != len(data["categories"]):
        problems.append("category ids are missing or not unique")
    images = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not all(key in im for key in ("id", "file_name", "width", "height")):
            problems.append(f"images[{k}] needs id, file_name, width, height")
            continue
        if im["id"] in images:
            problems.append(f"image id {im['id']} is used twice")
        images[im["id"]] = im
    seen = set()
    for k, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or not all(key in a for key in ("image_id", "file_name", "segments_info")):
            problems.append(f"annotations[{k}] needs image_id, file_name, segments_info")
            continue
        iid = a["image_id"]
        where = f"annotation of image {iid} ({a['file_name']})"
        if iid not in images:
            problems.append(f"{where}: no image with that id")
            continue
        if iid in seen:
            problems.append(f"{where}: image has more than one annotation")
        seen.add(iid)
        infos, stuff_seen = {}, {}
        for s in a["segments_info"]:
            if not isinstance(s, dict) or not all(key in s for key in ("id", "category_id", "area", "bbox")):
                problems.append(f"{where}: segments_info entry {s!r} needs id, category_id, area, bbox")
                continue
            if s["id"] in infos:
                problems.append(f"{where}: segment id {s['id']} listed twice")
            if not isinstance(s["id"], int) or s["id"] <= 0:
                problems.append(f"{where}: segment id {s['id']!r} must be a positive integer")
            if s["category_id"] not in cat_ids:
                problems.append(f"{where}: segment {s['id']} has unknown category {s['category_id']}")
            if s.get("iscrowd", 0) not in (0, 1):
                problems.append(f"{where}: segment {s['id']} iscrowd must be 0 or 1")
            if s["category_id"] in stuff_ids and s["category_id"] in stuff_seen:
                problems.append(f"{where}: stuff category {s['category_id']} has more than one segment "
                                f"({stuff_seen[s['category_id']]} and {s['id']})")
            stuff_seen.setdefault(s["category_id"], s["id"])
            infos[s["id"]] = s
        try:
            labels = read_id_png(png_dir / a["file_name"])
        except ProjectError as e:
            problems.append(f"{where}: {e}")
            continue
        im = images[iid]
        if labels.shape != (im["height"], im["width"]):
            problems.append(f"{where}: PNG is {labels.shape[1]}x{labels.shape[0]}, image is "
                            f"{im['width']}x{im['height']}")
        stats = segment_stats(labels)
        for sid in sorted(set(stats) - set(infos)):
            problems.append(f"{where}: PNG id {sid} is not listed in segments_info")
        for sid in sorted(set(infos) - set(stats), key=str):
            problems.append(f"{where}: segment {sid} has no pixel in the PNG")
        for sid in sorted(set(infos) & set(stats)):
            area, bbox = stats[sid]
            if infos[sid]["area"] != area:
                problems.append(f"{where}: segment {sid} area is {infos[sid]['area']}, PNG has {area}")
            if [int(round(v)) for v in infos[sid]["bbox"]] != bbox:
                problems.append(f"{where}: segment {sid} bbox is {infos[sid]['bbox']}, PNG gives {bbox}")
    for iid in sorted(set(images) - seen, key=str):
        problems.append(f"image {iid} ({images[iid]['file_name']}) has no annotation")
    return problems


# ----------------------------------------------------------------------------------------------- merge
def merge_coco_panoptic(parts: Sequence[PathLike], out_dir: PathLike, image_dir: Optional[PathLike] = None,
                        progress: Optional[Progress] = None) -> str:
    """Merge COCO panoptic exports (e.g. the shards of ``main.py auto --shard K/N``) into one in ``out_dir``;
    returns the path of its panoptic.json.

    ``parts``: each a panoptic.json (its PNGs in the folder of the same stem beside it) or a folder holding one.
    Categories are reconciled by name: a name keeps the id it has in the first part that has it, and a name new
    in a later part whose id is already taken gets the next free id (``segments_info`` follow). A name that is a
    thing in one part and stuff in another is refused. Images are renumbered 1..N in file-name order; segment ids
    stay (they are per image). The same image (``file_name``) in two parts is refused, naming both. The parts'
    ``image_dir`` must agree unless ``image_dir`` is given. Their ``"skipped"`` lists are joined.

    Checks every part before writing anything, and writes staged (annotator.staging): on any error ``out_dir`` is
    left as it was. ``progress(done, total)`` may cancel. Raises ProjectError naming the file and the problem.
    """
    jsons = []
    for part in parts:
        p = Path(part)
        jsons.append(p / "panoptic.json" if p.is_dir() else p)
    if not jsons:
        raise ProjectError("nothing to merge: name the parts' panoptic.json files or their folders")
    out_dir = Path(out_dir)
    out_json = (out_dir / "panoptic.json").resolve()
    for j in jsons:
        if j.resolve() == out_json:
            raise ProjectError(f"{j}: the merged export would overwrite this part; choose another --out folder")
    if len({j.resolve() for j in jsons}) != len(jsons):
        raise ProjectError("the same part is named twice")

    categories: list[Category] = []
    by_name: dict[str, Category] = {}
    images: list[tuple[str, dict, dict, Path, dict]] = []  # (file name, image, annotation, png, category map)
    owner: dict[str, Path] = {}
    image_dirs: set = set()
    skipped: list = []
    for j in jsons:
        data = _load_json(j)
        png_dir = _default_png_dir(j)
        remap: dict[int, int] = {}
        for k, c in enumerate(data["categories"]):
            try:
                cid, name, isthing = int(c["id"]), str(c["name"]), bool(c.get("isthing", 1))
                color = tuple(int(v) for v in c.get("color") or default_color(len(categories)))
            except (KeyError, TypeError, ValueError) as e:
                raise ProjectError(f"{j}: categories[{k}] is malformed ({e!r})") from None
            known = by_name.get(name)
            if known is None:
                taken = {x.id for x in categories}
                new_id = cid if cid not in taken and cid > 0 else max(taken | {0}) + 1
                known = by_name[name] = Category(new_id, name, color, isthing)
                categories.append(known)
            elif known.isthing != isthing:
                raise ProjectError(f"{j}: category {name!r} is {'a thing' if isthing else 'stuff'} here and "
                                   f"{'a thing' if known.isthing else 'stuff'} in an earlier part")
            remap[cid] = known.id
        d = data.get("image_dir")
        if isinstance(d, str):
            image_dirs.add(os.path.normpath(os.fspath(j.parent / d)))
        if isinstance(data.get("skipped"), list):
            skipped.extend(data["skipped"])
        anns = {a.get("image_id"): a for a in data["annotations"] if isinstance(a, dict)}
        for k, im in enumerate(data["images"]):
            try:
                iid, fname = im["id"], str(im["file_name"])
                int(im["width"]), int(im["height"])
            except (KeyError, TypeError, ValueError) as e:
                raise ProjectError(f"{j}: images[{k}] needs id, file_name, width, height ({e!r})") from None
            if fname in owner:
                raise ProjectError(f"image {fname} is in two parts, {owner[fname]} and {j}: the parts overlap "
                                   "(were they made with the same --shard?)")
            owner[fname] = j
            ann = anns.get(iid)
            if ann is None or not isinstance(ann.get("segments_info"), list) or "file_name" not in ann:
                raise ProjectError(f"{j}: image {fname} has no annotation with file_name and segments_info")
            _check_inside(j, f"the annotation file_name of image {iid}", str(ann["file_name"]))
            png = png_dir / str(ann["file_name"])
            if not png.is_file():
                raise ProjectError(f"{j}: the PNG of image {fname} is missing ({png})")
            for s in ann["segments_info"]:
                if not isinstance(s, dict) or s.get("category_id") not in remap:
                    raise ProjectError(f"{j}: image {fname} has a segment of unknown category "
                                       f"{s.get('category_id') if isinstance(s, dict) else s!r}")
            images.append((fname, im, ann, png, remap))
    if image_dir is None:
        if len(image_dirs) > 1:
            raise ProjectError("the parts name different image folders (" + ", ".join(sorted(image_dirs)) +
                               "): pass the folder that holds the images (--image-dir)")
        image_dir = next(iter(image_dirs), None)

    images.sort(key=lambda t: t[0])
    with StagedOutput(out_dir) as staged:
        images_json, anns_json, used = [], [], set()
        report(progress, 0, len(images))
        for image_id, (fname, im, ann, png, remap) in enumerate(images, 1):
            name = _png_name(fname, used)
            staged.path(f"panoptic/{name}").write_bytes(png.read_bytes())  # the whole stage is renamed in atomically
            images_json.append({**im, "id": image_id})
            infos = [{**s, "category_id": remap[s["category_id"]]} for s in ann["segments_info"]]
            anns_json.append({**ann, "image_id": image_id, "file_name": name, "segments_info": infos})
            report(progress, image_id, len(images))
        data = {"info": {"description": f"merged by pointer-annotator from {len(jsons)} parts", "version": "1.0"},
                "licenses": [], "images": images_json, "annotations": anns_json,
                "categories": [_category_json(c) for c in categories]}
        if image_dir is not None:
            data["image_dir"] = os.path.abspath(os.fspath(image_dir))
        data["skipped"] = skipped
        atomic_write_bytes(staged.path("panoptic.json"), json.dumps(data).encode("utf-8"))
        return os.fspath(staged.final("panoptic.json"))
