"""Polygon formats: labelme JSON export and import, YOLO segmentation export. No Qt here.

Masks become polygons with OpenCV: ``cv2.findContours`` (outer outlines and holes, ``RETR_CCOMP``), simplified by
``cv2.approxPolyDP`` only when asked (``epsilon``: the polygon tolerance in pixels; default 0: every corner of
the outline, lossless; 0.5 halves the vertices at a mean IoU of 0.998, measured on 60 COCO-MVal masks). A polygon
cannot have a hole, so each hole is joined to its outline by a zero-width cut (the "keyhole" polygon: out along
the cut, round the hole the other way, back). Separate parts of one segment are

* labelme: separate shapes with the segment's id as their ``group_id`` (labelme's own way to say "one object");
* YOLO: one line per segment, so the parts are joined by zero-width cuts too (as Ultralytics' own converters
  ``merge_multi_segment`` do); the cut's rasterised line is the only difference from the mask.

labelme export (``export_labelme``): ``out_dir/<image stem>.json``, labelme's file layout (``version``,
``flags``, ``shapes`` [{label, points, group_id, shape_type, flags, description, mask}], ``imagePath`` relative
to the JSON, ``imageData`` null, ``imageHeight``, ``imageWidth``); labels are category names. With tolerance 0
labelme's own reader (``LabelFile`` + ``labelme.utils.shapes_to_label``) gives every segment back pixel for
pixel: each part is a ``polygon`` where Pillow, labelme's rasteriser, fills that polygon back exactly, else a
``mask`` shape (labelme >= 5.3; a PNG of the part's box): lone pixels, one-pixel lines and some parts with holes
(see ``labelme_shapes``). With a tolerance > 0 the parts are simplified polygons (lossy by design).

YOLO export (``export_yolo_seg``): ``out_dir/images/{train,val}/`` (hard links to the images where the file system
allows, else copies), ``out_dir/labels/{train,val}/<stem>.txt`` with one ``class x1 y1 x2 y2 ...`` line per
segment (pixel centres, x + 0.5 and y + 0.5, divided by the image width / height), and ``out_dir/data.yaml``
(``path``, ``train: images/train``, ``val: images/val``, ``names``); class indices are the categories in id
order. Only images with at least one segment are written: an image nobody labelled would be learned as "no
object here". ``background=True`` adds them with empty label files (for images known to show nothing). The val
split is ``val_fraction`` (default 0.2) of the images chosen by a hash of each file name (``yolo_val_split``), so
an image stays in its split when images are added or removed.

labelme import (``import_labelme``): a folder of labelme JSON files (or a list of them) becomes a project. Shapes
``polygon``, ``rectangle``, ``circle`` and ``mask`` are drawn in file order (later shapes over earlier ones, as
``labelme.utils.shapes_to_label`` does); shapes with the same label and ``group_id`` are one segment, a shape
without ``group_id`` is a segment of its own; each label becomes a category. ``line``, ``linestrip`` and
``point`` shapes have no area and are skipped with a warning (``project.warnings``). An image missing beside its
JSON but embedded (``imageData``) is written into the project's ``images/`` folder.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import cv2
import numpy as np

from annotator.document import (Category, ImageEntry, Project, ProjectError, Segment, atomic_write_bytes,
                                default_color, encode_id_png)
from annotator.staging import Progress, StagedOutput, report

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
LABELME_VERSION = "5.5.0"  # the labelme file format these files follow (labelme 5.x and 6.x read it)
__all__ = ["mask_to_polygons", "mask_rings", "polygons_to_mask", "export_labelme", "export_yolo_seg", "import_labelme",
           "read_yolo_seg", "labelme_shapes", "yolo_val_split", "plan_yolo_export", "check_tolerance"]


# ------------------------------------------------------------------------------------------- mask <-> polygon
def _rings(mask: np.ndarray, epsilon: float) -> list[list[np.ndarray]]:
    """Per connected part: [outline, hole, hole, ...], each an (N, 2) int array of pixel centres."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]
    parts: list[list[np.ndarray]] = []
    for k, c in enumerate(contours):
        if hierarchy[k][3] != -1:  # a hole: taken with its outline below
            continue
        rings = [c]
        child = hierarchy[k][2]
        while child != -1:
            rings.append(contours[child])
            child = hierarchy[child][0]
        out = []
        for r in rings:
            if epsilon > 0 and len(r) > 3:
                r = cv2.approxPolyDP(r, epsilon, True)
            out.append(r.reshape(-1, 2).astype(np.int64))
        parts.append(out)
    return parts


def mask_rings(mask: np.ndarray, epsilon: float = 0.0) -> list[list[np.ndarray]]:
    """The outlines of ``mask`` unjoined, for editing (annotator.polygon_edit): per connected part
    [outline, hole, hole, ...], each an (N, 2) int array of pixel centres (x, y), simplified by ``epsilon``
    pixels (cv2.approxPolyDP) when > 0. Rings of fewer than 3 vertices (a lone pixel, a one-pixel line) are
    included as traced."""
    return _rings(mask, epsilon)


def _join(rings: Sequence[np.ndarray]) -> np.ndarray:
    """One ring from several, each joined to the ones before at the closest pair of vertices by a zero-width cut
    (out along the cut, all round the joined ring starting there, back along the cut)."""
    joined = rings[0]
    for r in rings[1:]:
        d = ((joined[:, None, :] - r[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        loop = np.concatenate([r[j:], r[: j + 1]])  # r starting and ending at its closest vertex
        joined = np.concatenate([joined[: i + 1], loop, joined[i:]])
    return joined


def mask_to_polygons(mask: np.ndarray, epsilon: float = 0.0, join_parts: bool = False) -> list[np.ndarray]:
    """Polygons ((N, 2) int arrays of x, y) whose filling gives ``mask``: one per connected part, holes joined in
    by zero-width cuts; with ``join_parts`` a single polygon for the whole mask. Parts too small for a polygon
    (fewer than 3 vertices: a pixel or a one-pixel line) are left out."""
    polys = []
    for rings in _rings(mask, epsilon):
        if len(rings[0]) < 3:
            continue
        polys.append(_join([r for r in rings if len(r) >= 3]) if len(rings) > 1 else rings[0])
    if join_parts and len(polys) > 1:
        polys = [_join(polys)]
    return polys


def polygons_to_mask(polygons: Iterable[Sequence], height: int, width: int) -> np.ndarray:
    """Filled polygons (x, y vertices, float or int) as an HxW bool mask (OpenCV's filler, outlines included)."""
    canvas = np.zeros((height, width), np.uint8)
    for p in polygons:
        pts = np.round(np.asarray(p, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        if len(pts) >= 3:
            cv2.fillPoly(canvas, [pts], 1)
            cv2.polylines(canvas, [pts], True, 1)
    return canvas.astype(bool)


# ------------------------------------------------------------------------------------------------ helpers
def unique_stems(project: Project) -> list[str]:
    """A file stem per image, unique within the project (a_1, a_2 if two folders both hold a.jpg)."""
    stems, used = [], set()
    for e in project.images:
        stem = re.sub(r"[^\w.-]", "_", Path(e.path).stem) or "image"
        cand, k = stem, 1
        while cand.lower() in used:
            k += 1
            cand = f"{stem}_{k}"
        used.add(cand.lower())
        stems.append(cand)
    return stems


def _segments_of(entry: ImageEntry) -> Iterable[tuple[Segment, np.ndarray]]:
    labels = entry.labels
    for sid in sorted(entry.segments):
        mask = labels == sid
        if mask.any():
            yield entry.segments[sid], mask


# -------------------------------------------------------------------------------------------------- labelme
def _labelme_fill(poly: np.ndarray, height: int, width: int) -> np.ndarray:
    """What labelme's reader makes of a polygon shape (labelme.utils.shape_to_mask: Pillow's ImageDraw.polygon,
    outline and fill), drawn on an HxW canvas."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in poly], outline=1, fill=1)
    return np.asarray(canvas, bool)


def _mask_shape(crop: np.ndarray, x0: int, y0: int) -> dict:
    """A labelme ``mask`` shape (labelme >= 5.3): a PNG of the pixels in the box from (x0, y0) to the opposite
    corner, both included, as labelme.utils.shapes_to_label pastes it."""
    png = cv2.imencode(".png", crop.astype(np.uint8) * 255)[1].tobytes()
    return {"points": [[float(x0), float(y0)], [float(x0 + crop.shape[1] - 1), float(y0 + crop.shape[0] - 1)]],
            "shape_type": "mask", "mask": base64.b64encode(png).decode("ascii")}


def labelme_shapes(mask: np.ndarray, epsilon: float = 0.0) -> list[dict]:
    """The labelme shapes (``points``, ``shape_type``, ``mask``) of one segment, one per 8-connected part.

    ``epsilon`` 0: lossless under labelme's own reader. A part is a polygon when labelme's rasteriser
    (Pillow, see :func:`_labelme_fill`) fills it back exactly, and a ``mask`` shape (a PNG of the part's box)
    when no polygon does: a lone pixel or a one-pixel line (no area for a polygon), and some parts with holes,
    where the zero-width cut that joins a hole to its outline makes Pillow leave pixels out. The file read back
    with labelme's reader is then the mask exactly: nothing is lost.

    ``epsilon`` > 0: every part with a polygon is a polygon simplified by that many pixels (cv2.approxPolyDP),
    holes joined in by cuts, so the read-back differs from the mask by up to about ``epsilon`` pixels along the
    outline; parts too small for a polygon are still mask shapes, never dropped."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    n, cc, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)  # the parts findContours traces
    shapes = []
    for k in range(1, n):
        x0, y0, bw, bh = (int(v) for v in stats[k, :4])
        crop = cc[y0:y0 + bh, x0:x0 + bw] == k
        # a border of 1 px round the crop, so every outline is traced inside the canvas
        padded = np.pad(crop, 1)
        polys = mask_to_polygons(padded, epsilon)
        if len(polys) == 1:
            poly = polys[0] - 1
            if epsilon > 0 or np.array_equal(_labelme_fill(poly, bh, bw), crop):
                shapes.append({"points": [[float(x + x0), float(y + y0)] for x, y in poly],
                               "shape_type": "polygon", "mask": None})
                continue
        shapes.append(_mask_shape(crop, x0, y0))
    return shapes


def export_labelme(project: Project, out_dir: PathLike, epsilon: float = 0.0,
                   progress: Optional[Progress] = None) -> list[str]:
    """Write one labelme JSON per image with segments into ``out_dir`` (see module doc); returns their paths.
    ``epsilon``: polygon simplification in pixels, 0 (the default) lossless (see :func:`labelme_shapes`).
    ``progress(done, total)`` may cancel (annotator.staging.Cancelled); ``out_dir`` is then left as it was."""
    epsilon = check_tolerance(epsilon)
    with StagedOutput(out_dir) as staged:
        return _export_labelme(project, staged, epsilon, progress)


def check_tolerance(epsilon: float) -> float:
    """A polygon simplification tolerance in pixels (>= 0, finite); ValueError otherwise."""
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"polygon tolerance must be a number of pixels, got {epsilon!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"polygon tolerance must be 0 (lossless) or more pixels, got {epsilon!r}")
    return value


def _export_labelme(project: Project, staged: StagedOutput, epsilon: float, progress: Optional[Progress]
                    ) -> list[str]:
    out = staged.out_dir
    names = {c.id: c.name for c in project.categories}
    written = []
    total = len(project.images)
    for k, (e, stem) in enumerate(zip(project.images, unique_stems(project))):
        report(progress, k, total)
        if not e.segments:
            continue
        was_loaded = e.is_loaded
        shapes = []
        for seg, mask in _segments_of(e):
            for shape in labelme_shapes(mask, epsilon):
                shapes.append({"label": names.get(seg.category_id, str(seg.category_id)),
                               "points": shape["points"], "group_id": int(seg.id),
                               "description": "crowd" if seg.iscrowd else "", "shape_type": shape["shape_type"],
                               "flags": {}, "mask": shape["mask"]})
        if not was_loaded:
            e.unload()
        doc = {"version": LABELME_VERSION, "flags": {}, "shapes": shapes,
               "imagePath": os.path.relpath(os.path.abspath(e.path), out.resolve()).replace(os.sep, "/"),
               "imageData": None, "imageHeight": int(e.height), "imageWidth": int(e.width)}
        atomic_write_bytes(staged.path(f"{stem}.json"), json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8"))
        written.append(os.fspath(staged.final(f"{stem}.json")))
    report(progress, total, total)
    return written


def _shape_mask(shape: dict, h: int, w: int, where: str) -> Optional[np.ndarray]:
    """The pixels of one labelme shape, None for shapes without area; ProjectError if malformed."""
    kind = shape.get("shape_type") or "polygon"
    try:
        pts = np.asarray(shape["points"], np.float64).reshape(-1, 2)
    except (KeyError, TypeError, ValueError) as e:
        raise ProjectError(f"{where}: points must be a list of [x, y] ({e})") from None
    if not np.isfinite(pts).all():
        raise ProjectError(f"{where}: points are not finite numbers")
    if kind == "polygon":
        if len(pts) < 3:
            raise ProjectError(f"{where}: a polygon needs at least 3 points, has {len(pts)}")
        return polygons_to_mask([pts], h, w)
    if kind == "rectangle":
        if len(pts) != 2:
            raise ProjectError(f"{where}: a rectangle needs 2 points, has {len(pts)}")
        (x0, y0), (x1, y1) = np.round(pts).astype(int)
        m = np.zeros((h, w), np.uint8)
        cv2.rectangle(m, (min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1)), 1, -1)
        return m.astype(bool)
    if kind == "circle":
        if len(pts) != 2:
            raise ProjectError(f"{where}: a circle needs 2 points (centre, rim), has {len(pts)}")
        c, rim = pts
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, tuple(int(round(v)) for v in c), int(round(float(np.hypot(*(rim - c))))), 1, -1)
        return m.astype(bool)
    if kind == "mask":  # labelme >= 5.3: a PNG of the box given by the two points
        if len(pts) != 2 or not isinstance(shape.get("mask"), str):
            raise ProjectError(f"{where}: a mask shape needs 2 points and a base64 PNG 'mask'")
        try:
            crop = cv2.imdecode(np.frombuffer(base64.b64decode(shape["mask"]), np.uint8), cv2.IMREAD_GRAYSCALE)
        except (ValueError, cv2.error):
            crop = None
        if crop is None:
            raise ProjectError(f"{where}: its mask is not a readable PNG")
        x0, y0 = np.round(pts[0]).astype(int)
        m = np.zeros((h, w), bool)
        y1, x1 = min(h, y0 + crop.shape[0]), min(w, x0 + crop.shape[1])
        if x0 < w and y0 < h:
            m[max(0, y0):y1, max(0, x0):x1] = crop[max(0, -y0): y1 - y0, max(0, -x0): x1 - x0] > 0
        return m
    return None  # line, linestrip, point: no area


def _labelme_files(source: Union[PathLike, Iterable[PathLike]]) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        src = Path(source)
        if src.is_dir():
            files = sorted(p for p in src.iterdir() if p.suffix.lower() == ".json" and p.is_file())
            if not files:
                raise ProjectError(f"{src}: no labelme JSON files in this folder")
            return files
        return [src]
    return [Path(p) for p in source]


def import_labelme(source: Union[PathLike, Iterable[PathLike]], project_dir: PathLike,
                   progress: Optional[Progress] = None) -> Project:
    """A new project in ``project_dir`` from labelme JSON files (a folder of them, or a list); see module doc.

    Raises ProjectError naming the file (and shape) on malformed input; nothing is written before every file
    has been read and checked. ``progress(done, total)`` is told after each file is read and may cancel
    (annotator.staging.Cancelled) until then; nothing is written in that case either.
    """
    project_dir = Path(project_dir)
    if (project_dir / "project.json").exists():
        raise ProjectError(f"{project_dir / 'project.json'}: a project already exists there; open it instead")
    categories: dict[str, Category] = {}
    warnings: list[str] = []
    staged = []  # (entry, label map as PNG bytes or None, embedded image bytes or None, path)
    files = _labelme_files(source)
    report(progress, 0, len(files))
    for done, path in enumerate(files, 1):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProjectError(f"{path}: not a readable labelme JSON ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
            raise ProjectError(f"{path}: not a labelme file (no 'shapes' list)")
        image_path = str(data.get("imagePath") or "").replace("\\", "/")
        image_file = (path.parent / image_path) if image_path else None
        embedded = None
        if image_file is None or not image_file.is_file():
            if not data.get("imageData"):
                raise ProjectError(f"{path}: its image {image_path or '(none named)'} is missing and not embedded")
            try:
                embedded = base64.b64decode(data["imageData"])
            except (ValueError, TypeError) as e:
                raise ProjectError(f"{path}: imageData is not base64 ({e})") from None
            img = cv2.imdecode(np.frombuffer(embedded, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise ProjectError(f"{path}: its embedded image is not readable")
            h, w = img.shape[:2]
        else:
            from annotator.document import probe_image

            w, h = probe_image(image_file)  # EXIF-rotated as labelme shows it; from the header where it is sure
        try:
            want_h, want_w = int(data.get("imageHeight", h)), int(data.get("imageWidth", w))
        except (TypeError, ValueError):
            raise ProjectError(f"{path}: imageHeight / imageWidth are not numbers") from None
        if (want_h, want_w) != (h, w):
            raise ProjectError(f"{path}: the file says {want_w}x{want_h}, the image is {w}x{h}")
        labels = np.zeros((h, w), np.int32)
        segments: dict[int, Segment] = {}
        groups: dict[tuple, int] = {}
        for k, shape in enumerate(data["shapes"]):
            where = f"{path}: shapes[{k}]"
            if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
                raise ProjectError(f"{where}: needs a 'label' string")
            mask = _shape_mask(shape, h, w, where)
            if mask is None:
                warnings.append(f"{where} ({shape.get('shape_type')}) has no area: skipped")
                continue
            label = shape["label"]
            if label not in categories:
                categories[label] = Category(len(categories) + 1, label, default_color(len(categories)), True)
            gid = shape.get("group_id")
            key = (label, gid) if gid is not None else (label, "shape", k)
            sid = groups.get(key)
            if sid is None:
                sid = groups[key] = len(groups) + 1
                segments[sid] = Segment(sid, categories[label].id, shape.get("description") == "crowd")
            labels[mask] = sid
        present = set(np.unique(labels).tolist())
        segments = {s: seg for s, seg in segments.items() if s in present}  # fully drawn over by later shapes
        name = image_path or f"{path.stem}.png"
        entry = ImageEntry(os.fspath(image_file) if embedded is None else name, w, h, segments)
        if segments:
            # Kept as PNG bytes, not as the int32 map: a folder of 12 MP photos would otherwise hold 48 MB per
            # image until the end (about 2% of that as PNG).
            entry._labelled_pixels = int(np.count_nonzero(labels))
            labels = encode_id_png(labels)
        staged.append((entry, labels if segments else None, embedded, path))
        del labels
        report(progress, done, len(files))
    if not categories:
        categories["object"] = Category(1, "object", default_color(0), True)

    made_dir = not project_dir.exists()
    project_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    proj = None
    try:
        for entry, _, embedded, path in staged:
            if embedded is not None:
                images_dir = project_dir / "images"
                images_dir.mkdir(exist_ok=True)
                target = images_dir / (re.sub(r"[^\w.-]", "_", path.stem) + Path(entry.path).suffix.lower())
                written.append(target)
                atomic_write_bytes(target, embedded)
                entry.path = os.fspath(target.resolve())
        proj = Project(project_dir, [e for e, *_ in staged], list(categories.values()))
        for i, (entry, png, _, _) in enumerate(staged):
            if png is not None:
                proj._gen += 1
                stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(entry.path).stem)[:80]
                rel = f"labels/{i:05d}_{stem}_g{proj._gen}.png"
                (proj.project_dir / "labels").mkdir(exist_ok=True)
                written.append(proj.project_dir / rel)
                atomic_write_bytes(proj.project_dir / rel, png)
                entry.label_file = rel
        proj.warnings.extend(warnings)
        proj.save()
    except BaseException:
        # A full disk, ...: no half-made project is left behind (and its lock is released).
        if proj is not None:
            proj._abandon()
        for f in written:
            f.unlink(missing_ok=True)
        if made_dir:
            shutil.rmtree(project_dir, ignore_errors=True)
        raise
    return proj


# ----------------------------------------------------------------------------------------------------- YOLO
def _link_or_copy(src: str, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


DEFAULT_VAL_FRACTION = 0.2


def _name_score(name: str) -> float:
    """A number in [0, 1) fixed by the name alone (SHA-1), so an image's split never depends on the others."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def yolo_val_split(names: Sequence[str], val_fraction: float = DEFAULT_VAL_FRACTION) -> list[bool]:
    """For each image file name, whether it goes to the validation split: those whose SHA-1 score (a number in
    [0, 1) from the name alone) is below ``val_fraction``. An image keeps its split when images are added or
    removed, and about ``val_fraction`` of a large set is validation. One exception keeps both splits usable:
    with two or more images neither split is left empty (the image with the lowest score goes to val, or the one
    with the highest to train). ``val_fraction`` must be in (0, 1); ValueError otherwise."""
    try:
        val_fraction = float(val_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"val fraction must be a number between 0 and 1, got {val_fraction!r}") from None
    if not 0 < val_fraction < 1:
        raise ValueError(f"val fraction must be between 0 and 1 (both excluded), got {val_fraction!r}")
    scores = [_name_score(n) for n in names]
    val = [s < val_fraction for s in scores]
    if len(names) >= 2 and not any(val):
        val[int(np.argmin(scores))] = True
    elif len(names) >= 2 and all(val):
        val[int(np.argmax(scores))] = False
    return val


class YoloPlan:
    """Which project images a YOLO export writes, and to which split (see :func:`plan_yolo_export`)."""

    def __init__(self, train: list[int], val: list[int], left_out: list[int], background: list[int],
                 val_fraction: float) -> None:
        self.train = train            # image indices in the train split
        self.val = val                # image indices in the val split
        self.left_out = left_out      # never-labelled images not exported (background not asked for)
        self.background = background  # never-labelled images exported with an empty label file
        self.val_fraction = val_fraction

    def describe(self) -> str:
        """One line for a person: the split's sizes and what happened to the never-labelled images."""
        text = f"{len(self.train)} train, {len(self.val)} val images"
        if self.left_out:
            n = len(self.left_out)
            text += (f"; {n} image{'s' if n != 1 else ''} without any labelled segment left out (not background: "
                     "export with background images to add them as negative examples)")
        if self.background:
            n = len(self.background)
            text += f"; {n} never-labelled image{'s' if n != 1 else ''} added as background (empty label files)"
        if not self.val or not self.train:
            text += f"; the {'val' if not self.val else 'train'} split is empty: one image cannot be split"
        return text


def plan_yolo_export(project: Project, val_fraction: float = DEFAULT_VAL_FRACTION,
                     background: bool = False) -> YoloPlan:
    """The images a YOLO export writes: those with at least one segment, and with ``background`` also the
    others (empty label files: YOLO learns them as images with no object in them, so only for images known to
    hold none). The split is :func:`yolo_val_split` of the exported file names."""
    stems = unique_stems(project)
    chosen = [k for k, e in enumerate(project.images) if e.segments or background]
    names = [stems[k] + Path(project.images[k].path).suffix.lower() for k in chosen]
    val = yolo_val_split(names, val_fraction)
    return YoloPlan([k for k, v in zip(chosen, val) if not v], [k for k, v in zip(chosen, val) if v],
                    [] if background else [k for k, e in enumerate(project.images) if not e.segments],
                    [k for k in chosen if not project.images[k].segments], float(val_fraction))


def export_yolo_seg(project: Project, out_dir: PathLike, epsilon: float = 0.0, with_images: bool = True,
                    progress: Optional[Progress] = None, val_fraction: float = DEFAULT_VAL_FRACTION,
                    background: bool = False) -> str:
    """Write a YOLO segmentation data set into ``out_dir`` (see module doc); returns the data.yaml path.

    Only images with at least one segment are written unless ``background`` (then the never-labelled ones too,
    with empty label files); ``val_fraction`` of them, chosen by name (:func:`yolo_val_split`), make the val
    split. ``epsilon``: polygon simplification in pixels, 0 (the default) the outline's every corner. ProjectError
    if there is nothing to export. ``progress(done, total)`` may cancel (annotator.staging.Cancelled); ``out_dir``
    is then left as it was."""
    epsilon = check_tolerance(epsilon)
    plan = plan_yolo_export(project, val_fraction, background)
    if not plan.train and not plan.val:
        raise ProjectError(f"{project.project_dir}: no image has a labelled segment, so there is nothing to export "
                           "to YOLO")
    with StagedOutput(out_dir) as staged:
        return _export_yolo_seg(project, staged, epsilon, with_images, progress, plan)


def _export_yolo_seg(project: Project, staged: StagedOutput, epsilon: float, with_images: bool,
                     progress: Optional[Progress], plan: YoloPlan) -> str:
    out = staged.out_dir
    cats = sorted(project.categories, key=lambda c: c.id)
    index = {c.id: k for k, c in enumerate(cats)}
    split = {**{k: "train" for k in plan.train}, **{k: "val" for k in plan.val}}
    stems = unique_stems(project)
    total = len(split)
    for done, k in enumerate(sorted(split)):
        report(progress, done, total)
        e, stem, part = project.images[k], stems[k], split[k]
        was_loaded = e.is_loaded
        lines = []
        for seg, mask in _segments_of(e):
            polys = mask_to_polygons(mask, epsilon, join_parts=True)
            if not polys:
                continue
            # pixel x spans [x, x + 1): its centre, where the outline runs, is x + 0.5. Written as the bare
            # index, Ultralytics' reader (which truncates x * width to int) moved most vertices a pixel up-left:
            # IoU 0.90 -> 0.98 on blobs read back its way (tests/test_polygon_io.py reads it so)
            xy = (polys[0].astype(np.float64) + 0.5) / [e.width, e.height]
            lines.append(" ".join([str(index[seg.category_id])] + [f"{v:.6f}" for v in xy.reshape(-1)]))
        if not was_loaded:
            e.unload()
        atomic_write_bytes(staged.path(f"labels/{part}/{stem}.txt"),
                           ("\n".join(lines) + ("\n" if lines else "")).encode())
        if with_images and os.path.isfile(e.path):
            _link_or_copy(e.path, staged.path(f"images/{part}/{stem}{Path(e.path).suffix.lower()}"))
    report(progress, total, total)
    yaml = [f"# YOLO segmentation data set written by pointer-annotator from {project.project_dir}",
            f"# {plan.describe()}.",
            f"# val: the images whose name's SHA-1 score is below {plan.val_fraction:g} (an image keeps its split "
            "when images are added or removed)",
            f"path: {json.dumps(os.fspath(out.resolve()))}", "train: images/train", "val: images/val", "names:"]
    yaml += [f"  {k}: {json.dumps(c.name, ensure_ascii=False)}" for k, c in enumerate(cats)]
    atomic_write_bytes(staged.path("data.yaml"), ("\n".join(yaml) + "\n").encode("utf-8"))
    return os.fspath(staged.final("data.yaml"))


def read_yolo_seg(label_file: PathLike, height: int, width: int) -> list[tuple[int, np.ndarray]]:
    """[(class index, HxW bool mask)] from a YOLO segmentation label file (the format as Ultralytics documents
    it: ``class x1 y1 ...`` normalised to 0..1); ProjectError naming the file and line when malformed."""
    out = []
    for n, line in enumerate(Path(label_file).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            cls, vals = int(parts[0]), np.asarray([float(v) for v in parts[1:]])
        except ValueError as e:
            raise ProjectError(f"{label_file}:{n}: not numbers ({e})") from None
        if len(vals) < 6 or len(vals) % 2 or not ((0 <= vals) & (vals <= 1)).all():
            raise ProjectError(f"{label_file}:{n}: needs at least 3 x y pairs in 0..1")
        pts = vals.reshape(-1, 2) * [width, height] - 0.5  # pixel centres (see export_yolo_seg)
        out.append((cls, polygons_to_mask([pts], height, width)))
    return out
