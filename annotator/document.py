"""The annotator's document model: a project of images with categories and panoptic label maps. No Qt here.

On-disk format (``project_dir``)::

    project.json                      images, categories, segments, format version (written atomically)
    labels/<index>_<stem>_<gen>.png   one label map per labelled image, segment id = R + 256 G + 256^2 B
                                      (the COCO panoptic encoding), written atomically

Every edit is one undo step and saves synchronously before it returns, so a crash (even SIGKILL) right after an
edit loses nothing that was accepted. A label map is never overwritten in place: each save of a changed map
writes a new generation file, then ``project.json`` is replaced atomically to point at it, then the superseded
file is deleted. Whatever moment a crash hits, ``project.json`` names a complete, consistent set of files
(orphan label files left by a crash are removed by the next save).

Undo steps store only the bounding-box region of the label map before and after the edit plus the segment /
category records that changed, not copies of whole maps. Label maps of images not being edited are loaded
lazily from disk and dropped again (least recently used first) once saved.
"""
from __future__ import annotations

import colorsys
import functools
import gc
import json
import logging
import os
import re
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import cv2
import numpy as np

# The id <-> RGB encoding and the image decoder live in train/ (plain numpy / OpenCV, no torch) so that the
# annotator and the training readers cannot drift apart.
# rgb_to_ids is not used here but coco_io and other callers import it from this module.
from train.coco_panoptic import decode_panoptic_png, ids_to_rgb, rgb_to_ids  # noqa: F401
from train.readers import IMAGE_SUFFIXES
from train.readers import check_image_size as _check_image_size
from train.readers import displayed_size as _displayed_size
from train.readers import read_image_rgb as _read_image_rgb
from train.sample import DataError

from annotator import gaps, project_lock
# The exporters and the batch mode import atomic_write_bytes from here too.
from annotator.atomic_files import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT_NAME = "pointer-annotator-project"
FORMAT_VERSION = 1
PROJECT_FILE = "project.json"
LABELS_DIR = "labels"
PROPOSALS_DIR = "proposals"  # auto-segment proposals not yet reviewed, one id-PNG per image (see set_proposals)
IMAGE_EXTENSIONS = IMAGE_SUFFIXES  # the image types the training readers accept too
MAX_SEGMENT_ID = 256 ** 3 - 1  # ids are stored as 24-bit RGB in PNGs (COCO panoptic encoding)
_LABEL_FILE_RE = re.compile(r"^\d+_.*_g\d+\.png$")

PathLike = Union[str, os.PathLike]


class ProjectError(ValueError):
    """A project file or label map is missing, malformed or inconsistent; the message names the file."""


class ProjectLockedError(ProjectError):
    """Another process has the project open for editing; ``holder`` is its lock record (host, pid, user, since).

    Open the project with ``read_only=True`` (or ``fallback_read_only=True``) to view and export it meanwhile.
    """

    def __init__(self, message: str, holder: Optional[dict] = None):
        super().__init__(message)
        self.holder = dict(holder or {})


class ReadOnlyProjectError(ProjectError):
    """An edit (or save) was asked of a project opened read-only; nothing was changed."""


# The writable Project of each folder in this process, by its lock's key. The lock is shared within a process
# (annotator.project_lock), so it alone let a second Project.open of the folder succeed, and whichever saved last
# lost the other's edits. Weak: a Project nobody holds any more does not count.
_writers: "weakref.WeakValueDictionary[tuple[int, int], Project]" = weakref.WeakValueDictionary()


def _writer_in_this_process(lock: project_lock.ProjectLock) -> Optional["Project"]:
    """The Project of this process that is open for writing on `lock`'s folder, if any."""
    writer = _writers.get(lock.key)
    if writer is not None:
        writer = None
        gc.collect()  # a writer in a reference cycle lingers until collected: only a reachable one counts
        writer = _writers.get(lock.key)
    return writer if writer is not None and writer._lock is not None else None


def lock_project_dir(project_dir: PathLike) -> project_lock.ProjectLock:
    """Take the one-writer lock of ``project_dir`` (see annotator.project_lock); call ``.release()`` when done.

    Raises ProjectLockedError naming the holder's host / PID / user if another process holds it, ProjectError if
    the lock file cannot be made there.
    """
    try:
        return project_lock.acquire(project_dir)
    except project_lock.LockHeldError as e:
        raise ProjectLockedError(str(e), e.holder) from None
    except OSError as e:
        raise ProjectError(f"{Path(project_dir) / project_lock.LOCK_FILE}: cannot create the project lock ({e})") \
            from None


@dataclass
class Category:
    """A label category. ``color`` is RGB 0-255; ``isthing`` False means stuff (COCO panoptic semantics)."""

    id: int
    name: str
    color: tuple[int, int, int]
    isthing: bool = True


@dataclass
class Segment:
    """One accepted segment of one image; its pixels are ``ImageEntry.labels == id``.

    ``id`` is unique within its image, > 0, and is the COCO panoptic segment id on export.
    """

    id: int
    category_id: int
    iscrowd: bool = False


# ----------------------------------------------------------------------------------------------- file helpers
def encode_id_png(labels: np.ndarray) -> bytes:
    """PNG bytes of a label map in the COCO panoptic RGB encoding."""
    if labels.size and (labels.min() < 0 or labels.max() > MAX_SEGMENT_ID):
        raise ValueError(f"segment ids must be in [0, {MAX_SEGMENT_ID}]")
    ids = np.asarray(labels).astype("<u4", copy=False)  # little-endian bytes: R, G, B, (zero) high byte
    bgr = cv2.cvtColor(ids.view(np.uint8).reshape(ids.shape + (4,)), cv2.COLOR_RGBA2BGR) if ids.size else \
        np.zeros(ids.shape + (3,), np.uint8)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError("cv2.imencode failed to encode a label map")
    return buf.tobytes()


def read_id_png(path: PathLike) -> np.ndarray:
    """Read a COCO-panoptic-encoded PNG as HxW int32 ids; raises ProjectError naming the file if unreadable."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ProjectError(f"{path}: label map file is missing")
    try:
        return decode_panoptic_png(path)
    except DataError as e:
        raise ProjectError(str(e)) from None


def read_image_rgb(path: PathLike) -> Optional[np.ndarray]:
    """HxWx3 uint8 RGB, or None if the file cannot be read as an image (grey / alpha are converted)."""
    try:
        return _read_image_rgb(path)
    except DataError:
        return None


def read_image_checked(path: PathLike) -> np.ndarray:
    """HxWx3 uint8 RGB; raises ProjectError saying why not (missing, corrupt, above train.readers.MAX_PIXELS)."""
    try:
        return _read_image_rgb(path)
    except DataError as e:
        raise ProjectError(str(e)) from None


def probe_image(path: PathLike) -> tuple[int, int]:
    """(width, height) of an image as it will be shown, from its header where that is certain (a folder of
    thousands of camera photos opens in seconds, not minutes of decoding), else by decoding it; ProjectError
    saying why the file cannot be used (missing, not an image, above train.readers.MAX_PIXELS)."""
    if not os.path.isfile(path):
        raise ProjectError(f"{path}: image file not found")
    size = _displayed_size(path)
    if size is None:
        img = read_image_checked(path)
        return img.shape[1], img.shape[0]
    try:
        _check_image_size(path, *size)
    except DataError as e:
        raise ProjectError(str(e)) from None
    return size


def list_images(folder: PathLike) -> list[str]:
    """Sorted absolute paths of the image files (by extension) directly in ``folder``."""
    folder = Path(folder)
    return sorted(os.fspath(p.resolve()) for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def no_images_message(folder: PathLike, also: str = "") -> str:
    """Why `folder` has nothing to label, naming the subfolders that hold images: a data set's photos often sit
    one level down (DATASET/images/), and a person who picked DATASET should be told where they are. `also`
    follows the first clause (", and no project")."""
    folder = Path(folder)
    kinds = ", ".join(s.lstrip(".") for s in IMAGE_EXTENSIONS if s not in (".jpeg", ".tiff"))
    text = f"{folder}: no image files ({kinds}) directly in this folder{also}"
    found = []
    try:
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        subfolders = []
    for sub in subfolders:
        try:
            n = len(list_images(sub))
        except OSError:
            continue
        if n:
            found.append(f"{sub.name}/ ({n})")
    if found:
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        text += f". These subfolders hold images: {', '.join(found[:5])}{more}. Open one of those"
    return text


def default_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated colour for the ``index``-th category (golden-ratio hue steps)."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _bbox(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) half-open box of the True pixels, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


# ----------------------------------------------------------------------------------------------- image entry
class ImageEntry:
    """One image of a project and its accepted segments.

    ``labels`` is the HxW int32 panoptic label map (0 = unlabelled), loaded lazily from disk; the array returned
    is a read-only view: change it only through Project edits (so every change is undoable and saved).
    """

    def __init__(self, path: str, width: int, height: int, segments: Optional[dict[int, Segment]] = None,
                 label_file: Optional[str] = None, labelled_pixels: int = 0):
        self.path = path
        self.width = int(width)
        self.height = int(height)
        self.segments: dict[int, Segment] = dict(segments or {})
        self.label_file = label_file        # project-relative path of the saved map, None = all zeros
        self._labels: Optional[np.ndarray] = None
        self._labelled_pixels = int(labelled_pixels)  # cached so image lists need not load every map
        self._dirty = False
        self._project_dir: Optional[Path] = None
        self._on_load: Optional[Callable[["ImageEntry"], None]] = None

    def __repr__(self) -> str:
        return f"ImageEntry({self.path!r}, {self.width}x{self.height}, {len(self.segments)} segments)"

    @property
    def name(self) -> str:
        """The image's file name (for display)."""
        return os.path.basename(self.path)

    @property
    def is_loaded(self) -> bool:
        return self._labels is not None

    def _array(self) -> np.ndarray:
        """The writable label map (internal), loading it from disk if needed."""
        if self._labels is None:
            if self.label_file is None:
                arr = np.zeros((self.height, self.width), np.int32)
            else:
                assert self._project_dir is not None
                file = self._project_dir / self.label_file
                arr = read_id_png(file)
                if arr.shape != (self.height, self.width):
                    raise ProjectError(f"{file}: label map is {arr.shape[1]}x{arr.shape[0]}, "
                                       f"image {self.path} is {self.width}x{self.height}")
                unknown = set(np.unique(arr).tolist()) - set(self.segments) - {0}
                if unknown:
                    raise ProjectError(f"{file}: segment ids {sorted(unknown)[:10]} are not listed for "
                                       f"image {self.path} in {PROJECT_FILE}")
            self._labels = arr
            if self._on_load is not None:
                self._on_load(self)
        return self._labels

    @property
    def labels(self) -> np.ndarray:
        view = self._array().view()
        view.flags.writeable = False
        return view

    def unload(self) -> bool:
        """Drop the in-memory label map if it is saved; returns whether it was dropped."""
        if self._labels is None or self._dirty:
            return False
        self._labels = None
        return True

    def _has_no_labels(self) -> bool:
        return (not self.segments and self.label_file is None and not self._dirty
                and (self._labels is None or not self._labels.any()))

    def labelled_fraction(self) -> float:
        """Fraction of pixels that belong to an accepted segment (no map load needed if not loaded)."""
        n = self.width * self.height
        if n == 0:
            return 0.0
        if self._labels is not None:
            return float(np.count_nonzero(self._labels)) / n
        return self._labelled_pixels / n

    def unlabelled_mask(self) -> np.ndarray:
        """HxW bool, True where no segment is."""
        return self._array() == 0

    def segment_mask(self, segment_id: int) -> np.ndarray:
        """HxW bool mask of one segment."""
        return self._array() == segment_id

    def segment_area(self, segment_id: int) -> int:
        return int(np.count_nonzero(self._array() == segment_id))

    def next_segment_id(self) -> int:
        """A free segment id (max + 1, or the smallest free id once the 24-bit range is used up)."""
        if not self.segments:
            return 1
        m = max(self.segments)
        if m < MAX_SEGMENT_ID:
            return m + 1
        used = set(self.segments)
        return next(i for i in range(1, MAX_SEGMENT_ID + 1) if i not in used)

    def read_image(self) -> np.ndarray:
        """The image as HxWx3 uint8 RGB; raises ProjectError naming the file and why it cannot be read."""
        img = read_image_checked(self.path)
        if img.shape[:2] != (self.height, self.width) and self._has_no_labels():
            # The size came from the header (probe_image) and the decoder disagrees (an orientation tag Pillow
            # read differently): nothing is labelled yet, so the decoded size is simply the right one.
            self.height, self.width = img.shape[:2]
            self._labels = None
        if img.shape[:2] != (self.height, self.width):
            raise ProjectError(f"{self.path}: image is {img.shape[1]}x{img.shape[0]}, the project expects "
                               f"{self.width}x{self.height}")
        return img


# ----------------------------------------------------------------------------------------------- undo steps
@dataclass
class _Step:
    """One undoable edit: a label-map patch and the segment / category records before and after."""

    name: str
    image_index: int = -1  # -1: project-wide (categories)
    box: Optional[tuple[int, int, int, int]] = None
    before: Optional[np.ndarray] = None
    after: Optional[np.ndarray] = None
    seg_before: Optional[dict[int, Optional[Segment]]] = None
    seg_after: Optional[dict[int, Optional[Segment]]] = None
    cat_before: Optional[dict[int, Optional[Category]]] = None
    cat_after: Optional[dict[int, Optional[Category]]] = None
    # Project-wide steps that touch segment records on several images: image index -> (records before, after).
    image_segs: Optional[dict[int, tuple[dict[int, Optional[Segment]], dict[int, Optional[Segment]]]]] = None
    cat_order: Optional[tuple[list[int], list[int]]] = None  # category ids in order, before and after


# ----------------------------------------------------------------------------------------------- project
def _writes(method: Callable) -> Callable:
    """Marks a Project method that changes the project: on a read-only project it raises ReadOnlyProjectError
    before touching anything."""
    @functools.wraps(method)
    def wrapper(self: "Project", *args, **kw):
        self._check_writable(method.__name__)
        return method(self, *args, **kw)

    return wrapper


class Project:
    """A labelling project: images, categories, per-image segments and label maps, undo/redo, autosave.

    One writer per project: a writable Project holds the folder's lock (annotator.project_lock) from
    construction until ``close()`` (or process exit), so a second process gets ProjectLockedError naming the
    holder, and so does a second ``Project.open`` of the folder in the same process. ``read_only=True`` takes no
    lock (readers such as ``python -m train finetune``, or a second viewer):
    every edit method then raises ReadOnlyProjectError and ``save()`` does nothing.

    Listeners (``add_listener``) are called as ``callback(event, image_index)`` after every change, where event is
    the edit's name ("add_segment", "delete_segment", "merge_segments", "paint", "set_segment_category",
    "add_category", "rename_category", "recolor_category", "set_category_isthing", "delete_category",
    "set_segment_mask", "fill_gaps") or "undo" / "redo";
    image_index is -1 for project-wide (category) changes.
    """

    max_loaded_maps = 4  # label maps kept in memory besides the one being edited

    def __init__(self, project_dir: PathLike, images: Sequence[ImageEntry], categories: Sequence[Category],
                 label_generation: int = 0, read_only: bool = False,
                 _lock: Optional[project_lock.ProjectLock] = None):
        self.project_dir = Path(project_dir).resolve()
        # Lock before anything else: raises ProjectLockedError (nothing to undo) if another process writes here.
        self._lock = None if read_only else (_lock or lock_project_dir(self.project_dir))
        if self._lock is not None:
            _writers[self._lock.key] = self
        self._read_only_reason: Optional[str] = "opened read-only" if read_only else None
        self.images: list[ImageEntry] = list(images)
        self.categories: list[Category] = list(categories)
        self.skipped: list[str] = []   # images that could not be read when the project was made
        self.warnings: list[str] = []  # problems found on open (e.g. an image file no longer there)
        # Preferences kept with the project (e.g. exports' "polygon_tolerance_px"): plain JSON values, saved in
        # project.json, not undo steps; see set_setting.
        self.settings: dict = {}
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self._listeners: list[Callable[[str, int], None]] = []
        self._gen = int(label_generation)
        self._loaded_order: list[int] = []  # ids of entries with a map in memory, least recent first
        self._meta_dirty = True
        for e in self.images:
            self._attach(e)

    # ---------------------------------------------------------------- construction
    @property
    def json_path(self) -> Path:
        return self.project_dir / PROJECT_FILE

    @property
    def read_only(self) -> bool:
        """True when this object may not change the project (opened read-only, or closed)."""
        return self._read_only_reason is not None

    @property
    def read_only_reason(self) -> Optional[str]:
        """Why the project is read-only (e.g. who holds its lock), None if writable."""
        return self._read_only_reason

    def _check_writable(self, action: str) -> None:
        if self._read_only_reason is not None:
            raise ReadOnlyProjectError(f"{self.project_dir}: {action} refused: the project is read-only "
                                       f"({self._read_only_reason})")

    def close(self) -> None:
        """Save anything unsaved and give up the write lock; the object is read-only afterwards. Idempotent."""
        if self._lock is None:
            return
        try:
            if self._meta_dirty or any(e._dirty for e in self.images):
                self.save()
        finally:
            self._lock.release()
            self._lock = None
            self._read_only_reason = "closed"

    def _abandon(self) -> None:
        """Give up the write lock without saving: for an import cancelled before its project was complete."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._read_only_reason = "closed"

    def _attach(self, entry: ImageEntry) -> None:
        entry._project_dir = self.project_dir
        entry._on_load = self._note_loaded

    @classmethod
    def new(cls, folder_or_image_paths: Union[PathLike, Iterable[PathLike]], project_dir: PathLike,
            categories: Optional[Sequence[Category]] = None) -> "Project":
        """Make a project from a folder of images (or a list of image files) and save it in ``project_dir``.

        Unreadable images are skipped and described in ``project.skipped``. Without ``categories`` the project
        starts with one thing category "object" (id 1). Raises ProjectError if ``project_dir`` already holds
        a project (open it instead), so an existing project is never overwritten, and ProjectLockedError if
        another process holds its lock. Images above train.readers.MAX_PIXELS are skipped like unreadable ones.
        """
        project_dir = Path(project_dir)
        if (project_dir / PROJECT_FILE).exists():
            raise ProjectError(f"{project_dir / PROJECT_FILE}: a project already exists there; open it instead")
        project_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_project_dir(project_dir)
        try:
            if (project_dir / PROJECT_FILE).exists():  # made by another process while we were not holding the lock
                raise ProjectError(f"{project_dir / PROJECT_FILE}: a project already exists there; open it instead")
            return cls._new_locked(folder_or_image_paths, project_dir, categories, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _new_locked(cls, folder_or_image_paths: Union[PathLike, Iterable[PathLike]], project_dir: Path,
                    categories: Optional[Sequence[Category]], lock: project_lock.ProjectLock) -> "Project":
        if isinstance(folder_or_image_paths, (str, os.PathLike)):
            src = Path(folder_or_image_paths)
            if src.is_dir():
                paths = list_images(src)
            else:
                paths = [os.fspath(src)]
        else:
            paths = [os.fspath(p) for p in folder_or_image_paths]
        entries, skipped = [], []
        for p in paths:
            try:
                w, h = probe_image(p)
            except ProjectError as e:  # the message names the file and why (corrupt, too large, ...)
                msg = f"skipped {e}"
                log.warning(msg)
                skipped.append(msg)
                continue
            entries.append(ImageEntry(os.path.abspath(p), w, h))
        if categories is None:
            categories = [Category(1, "object", default_color(0), True)]
        proj = cls(project_dir, entries, [replace(c) for c in categories], _lock=lock)
        proj.skipped = skipped
        proj.save()
        return proj

    @classmethod
    def open(cls, project_dir: PathLike, read_only: bool = False, fallback_read_only: bool = False) -> "Project":
        """Open a saved project. Raises ProjectError naming the file and the problem; never modifies the project
        (only the lock files ``project.lock`` / ``project.lock.json`` are written, see annotator.project_lock).

        ``project_dir`` may also be the path of the project.json itself. For editing, the project's lock is taken
        first (so what is read is what the last writer saved): if another process holds it, or another Project
        object of this process has it open for editing (not yet closed), ProjectLockedError says so, or, with
        ``fallback_read_only``, the project opens read-only with the reason in ``warnings`` and
        ``read_only_reason``. ``read_only=True`` takes no lock: for readers (e.g. fine-tuning) that must work
        while someone edits.
        """
        project_dir = Path(project_dir)
        if project_dir.name == PROJECT_FILE and project_dir.is_file():
            project_dir = project_dir.parent
        path = project_dir / PROJECT_FILE
        if not path.is_file():
            raise ProjectError(f"{path}: no project file there")
        if read_only:
            return cls._open_locked(project_dir, None)
        try:
            lock = lock_project_dir(project_dir)
            if _writer_in_this_process(lock) is not None:
                lock.release()
                raise ProjectLockedError(
                    f"{project_dir}: the project is already open for editing in this process (another Project "
                    "object); close that one first, or open this one read-only", project_lock.read_holder(project_dir))
        except ProjectError as e:  # held by another process or another Project here, or the folder is not writable
            if not fallback_read_only:
                raise
            proj = cls._open_locked(project_dir, None)
            proj._read_only_reason = str(e)
            proj.warnings.insert(0, f"{e}. Opened READ-ONLY: you can view and export, not edit.")
            return proj
        try:
            return cls._open_locked(project_dir, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(cls, project_dir: Path, lock: Optional[project_lock.ProjectLock]) -> "Project":
        """Read and check the project (``lock`` None: read-only)."""
        path = project_dir / PROJECT_FILE
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ProjectError(f"{path}: cannot read: {e}") from e
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProjectError(f"{path}: not valid JSON ({e})") from e
        images, categories, gen = _parse_project(data, path)
        proj = cls(project_dir, images, categories, gen, read_only=lock is None, _lock=lock)
        settings = data.get("settings", {})
        if isinstance(settings, dict):
            proj.settings = dict(settings)
        else:  # a preference is not worth refusing the project for
            proj.warnings.append(f"{path}: 'settings' is not a JSON object; the project's preferences are reset")
        for e in proj.images:
            if e.label_file is not None and not (proj.project_dir / e.label_file).is_file():
                raise ProjectError(f"{path}: label map {e.label_file} of image {e.path} is missing")
            if not os.path.isfile(e.path):
                proj.warnings.append(f"image file {e.path} is missing")
        proj._meta_dirty = False
        return proj

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> dict:
        """The project.json content."""
        imgs = []
        for e in self.images:
            try:
                rel = os.path.relpath(e.path, self.project_dir)
            except ValueError:  # other drive on Windows
                rel = None
            imgs.append({
                "path": e.path, "rel_path": rel, "width": e.width, "height": e.height,
                "labels": e.label_file, "labelled_pixels": e._labelled_pixels,
                "segments": [{"id": s.id, "category_id": s.category_id, "iscrowd": int(s.iscrowd)}
                             for s in sorted(e.segments.values(), key=lambda s: s.id)],
            })
        return {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "label_generation": self._gen,
            "categories": [{"id": c.id, "name": c.name, "color": list(c.color), "isthing": bool(c.isthing)}
                           for c in self.categories],
            "images": imgs,
            "settings": dict(self.settings),
        }

    def save(self) -> None:
        """Save changed label maps and project.json atomically (called automatically after every edit).

        Raises OSError if the disk write fails; the previous saved state then stays intact on disk and the
        in-memory changes stay marked unsaved so the next save retries them. Does nothing on a read-only
        project (its edits are refused, so there is nothing of its own to save, and another process may write).
        """
        if self.read_only:
            return
        labels_dir = self.project_dir / LABELS_DIR
        superseded = []
        new_files = []
        try:
            for i, e in enumerate(self.images):
                if not e._dirty:
                    continue
                labels_dir.mkdir(parents=True, exist_ok=True)
                arr = e._array()
                self._gen += 1
                stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(e.path).stem)[:80]
                rel = f"{LABELS_DIR}/{i:05d}_{stem}_g{self._gen}.png"
                atomic_write_bytes(self.project_dir / rel, encode_id_png(arr))
                new_files.append((e, rel, int(np.count_nonzero(arr)), e.label_file))
            old_state = [(e, e.label_file, e._labelled_pixels) for e, *_ in new_files]
            for e, rel, count, old in new_files:
                e.label_file, e._labelled_pixels = rel, count
            try:
                text = json.dumps(self.to_json(), indent=1)
                atomic_write_bytes(self.json_path, text.encode("utf-8"))
            except BaseException:
                for e, old, count in old_state:  # still pointing at what is on disk
                    e.label_file, e._labelled_pixels = old, count
                raise
        except BaseException:
            for _, rel, _, _ in new_files:  # files project.json never referenced
                try:
                    os.unlink(self.project_dir / rel)
                except OSError:
                    pass
            raise
        for e, rel, count, old in new_files:
            e._dirty = False
            if old is not None and old != rel:
                superseded.append(old)
        self._meta_dirty = False
        for old in superseded:
            try:
                os.unlink(self.project_dir / old)
            except OSError:
                pass
        self._remove_orphans()
        self._evict()

    def set_setting(self, key: str, value) -> None:
        """Remember a preference with the project (a JSON value; e.g. ``polygon_tolerance_px``), saved at once.
        Not an undo step. A read-only project keeps it for this session only."""
        json.dumps(value)  # TypeError now, not at the next save
        if key in self.settings and self.settings[key] == value:
            return
        self.settings[key] = value
        self._meta_dirty = True
        self.save()  # does nothing when read-only

    # ---------------------------------------------------------------- proposals under review
    def _proposals_path(self, image_index: int) -> Path:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(self._entry(image_index).path).stem)[:80]
        return self.project_dir / PROPOSALS_DIR / f"{image_index:05d}_{stem}.png"

    @_writes
    def set_proposals(self, image_index: int, masks: Sequence[np.ndarray]) -> None:
        """Keep an image's queued auto-segment proposals (disjoint masks, in review order) on disk, atomically,
        so a quit or a crash in the middle of a review loses none. They are not segments: exports and the
        trainer ignore them. An empty list removes them."""
        entry = self._entry(image_index)
        path = self._proposals_path(image_index)
        labels = np.zeros((entry.height, entry.width), np.int32)
        for k, m in enumerate(masks, 1):
            labels[self._check_mask(entry, m) & (labels == 0)] = k
        if not labels.any():
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, encode_id_png(labels))

    def proposals(self, image_index: int) -> list[np.ndarray]:
        """The image's saved proposals in review order; [] if none (or if the file is unreadable or of the wrong
        size: a proposal is cheap to recompute, so a bad file is reported in ``warnings``, never fatal)."""
        entry = self._entry(image_index)
        path = self._proposals_path(image_index)
        if not path.is_file():
            return []
        try:
            labels = read_id_png(path)
        except ProjectError as exc:
            self.warnings.append(f"{exc}; its proposals are dropped")
            return []
        if labels.shape != (entry.height, entry.width):
            self.warnings.append(f"{path}: proposals are {labels.shape[1]}x{labels.shape[0]}, the image is "
                                 f"{entry.width}x{entry.height}; dropped")
            return []
        return [labels == k for k in np.unique(labels) if k > 0]

    def images_with_proposals(self) -> list[int]:
        """Indices of the images that have saved proposals."""
        folder = self.project_dir / PROPOSALS_DIR
        if not folder.is_dir():
            return []
        return [i for i in range(len(self.images)) if self._proposals_path(i).is_file()]

    def _remove_orphans(self) -> None:
        """Delete label files / temp files left by a crash between writing a map and replacing project.json."""
        for f in self.project_dir.glob(f".{PROJECT_FILE}.*.tmp"):
            try:
                f.unlink()
            except OSError:
                pass
        labels_dir = self.project_dir / LABELS_DIR
        if not labels_dir.is_dir():
            return
        used = {os.path.basename(e.label_file) for e in self.images if e.label_file}
        for f in labels_dir.iterdir():
            if f.name not in used and (_LABEL_FILE_RE.match(f.name) or f.name.endswith(".tmp")):
                try:
                    f.unlink()
                except OSError:
                    pass

    def _note_loaded(self, entry: ImageEntry) -> None:
        key = id(entry)
        if key in self._loaded_order:
            self._loaded_order.remove(key)
        self._loaded_order.append(key)
        self._evict(keep=entry)

    def _evict(self, keep: Optional[ImageEntry] = None) -> None:
        """Drop saved label maps beyond ``max_loaded_maps`` (least recently loaded first)."""
        by_id = {id(e): e for e in self.images}
        self._loaded_order = [k for k in self._loaded_order if k in by_id and by_id[k].is_loaded]
        excess = len(self._loaded_order) - self.max_loaded_maps
        for k in list(self._loaded_order):
            if excess <= 0:
                break
            e = by_id[k]
            if e is keep:
                continue
            if e.unload():
                self._loaded_order.remove(k)
                excess -= 1

    # ---------------------------------------------------------------- listeners
    def add_listener(self, callback: Callable[[str, int], None]) -> None:
        """Call ``callback(event, image_index)`` after every change (see the class docstring)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str, int], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, event: str, image_index: int) -> None:
        for cb in list(self._listeners):
            try:
                cb(event, image_index)
            except Exception:  # a broken view must not break the document or lose the save
                log.exception("project listener %r failed on %s", cb, event)

    # ---------------------------------------------------------------- lookups
    def category(self, category_id: int) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise KeyError(f"no category with id {category_id}")

    def _entry(self, image_index: int) -> ImageEntry:
        if not 0 <= image_index < len(self.images):
            raise IndexError(f"image index {image_index} out of range (0..{len(self.images) - 1})")
        return self.images[image_index]

    def _check_mask(self, entry: ImageEntry, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != (entry.height, entry.width):
            raise ValueError(f"mask shape {mask.shape} does not match image {entry.height}x{entry.width}")
        return mask.astype(bool, copy=False)

    def _segment(self, entry: ImageEntry, segment_id: int) -> Segment:
        if segment_id not in entry.segments:
            raise KeyError(f"image {entry.name} has no segment {segment_id}")
        return entry.segments[segment_id]

    # ---------------------------------------------------------------- edit machinery
    def _apply_step(self, step: _Step, forward: bool) -> None:
        patch = step.after if forward else step.before
        segs = step.seg_after if forward else step.seg_before
        cats = step.cat_after if forward else step.cat_before
        if step.image_index >= 0:
            entry = self.images[step.image_index]
            if patch is not None and step.box is not None:
                y0, y1, x0, x1 = step.box
                entry._array()[y0:y1, x0:x1] = patch
                entry._dirty = True
            for sid, seg in (segs or {}).items():
                if seg is None:
                    entry.segments.pop(sid, None)
                else:
                    entry.segments[sid] = replace(seg)
        if cats:
            order = [c.id for c in self.categories]
            current = {c.id: c for c in self.categories}
            for cid, cat in cats.items():
                if cat is None:
                    current.pop(cid, None)
                else:
                    current[cid] = replace(cat)
                    if cid not in order:
                        order.append(cid)
            if step.cat_order is not None:
                order = list(step.cat_order[1 if forward else 0])
            self.categories = [current[c] for c in order if c in current]
        for i, (seg_before, seg_after) in (step.image_segs or {}).items():
            entry = self.images[i]
            for sid, seg in (seg_after if forward else seg_before).items():
                if seg is None:
                    entry.segments.pop(sid, None)
                else:
                    entry.segments[sid] = replace(seg)
        self._meta_dirty = True

    def _commit(self, step: _Step) -> None:
        """Apply a new step, push it on the undo stack, save, notify."""
        self._check_writable(step.name)  # the @_writes check, kept for edits added without it
        self._apply_step(step, forward=True)
        self._undo.append(step)
        self._redo.clear()
        self.save()
        self._notify(step.name, step.image_index)

    def _image_step(self, name: str, image_index: int, new_labels_fn, box, seg_after: dict) -> _Step:
        """Build a step for an image edit: ``new_labels_fn(patch_copy) -> new patch`` inside ``box``."""
        entry = self.images[image_index]
        before = after = None
        if box is not None:
            y0, y1, x0, x1 = box
            before = entry._array()[y0:y1, x0:x1].copy()
            after = new_labels_fn(before.copy())
        seg_before = {sid: (replace(entry.segments[sid]) if sid in entry.segments else None) for sid in seg_after}
        return _Step(name, image_index, box, before, after, seg_before, seg_after)

    # ---------------------------------------------------------------- image edits
    @_writes
    def add_segment(self, image_index: int, mask: np.ndarray, category_id: int, overwrite: bool = False) -> int:
        """Accept ``mask`` as a new segment; only its unlabelled pixels are taken, or, with ``overwrite``, all
        of them (other segments lose those pixels; one left with none is removed; one undo step in all).

        Returns the new segment id, or 0 (and records nothing) when the mask has no pixel to take.
        """
        entry = self._entry(image_index)
        self.category(category_id)
        labels = entry._array()
        take = self._check_mask(entry, mask)
        if not overwrite:
            take = take & (labels == 0)
        box = _bbox(take)
        if box is None:
            return 0
        sid = entry.next_segment_id()
        y0, y1, x0, x1 = box
        sub = take[y0:y1, x0:x1]
        seg_after: dict = {sid: Segment(sid, category_id)}
        if overwrite:
            for other in np.unique(labels[y0:y1, x0:x1][sub]):
                other = int(other)
                if other and not ((labels == other) & ~take).any():
                    seg_after[other] = None  # every pixel taken: the segment is gone

        def fn(patch):
            patch[sub] = sid
            return patch

        self._commit(self._image_step("add_segment", image_index, fn, box, seg_after))
        return sid

    @_writes
    def delete_segment(self, image_index: int, segment_id: int) -> None:
        """Remove a segment; its pixels become unlabelled."""
        entry = self._entry(image_index)
        self._segment(entry, segment_id)
        box = _bbox(entry._array() == segment_id)

        def fn(patch):
            patch[patch == segment_id] = 0
            return patch

        self._commit(self._image_step("delete_segment", image_index, fn, box, {segment_id: None}))

    @_writes
    def merge_segments(self, image_index: int, keep_id: int, other_id: int) -> None:
        """Merge ``other_id`` into ``keep_id`` (keep_id's category stays)."""
        entry = self._entry(image_index)
        self._segment(entry, keep_id)
        self._segment(entry, other_id)
        if keep_id == other_id:
            raise ValueError("cannot merge a segment with itself")
        box = _bbox(entry._array() == other_id)

        def fn(patch):
            patch[patch == other_id] = keep_id
            return patch

        self._commit(self._image_step("merge_segments", image_index, fn, box, {other_id: None}))

    @_writes
    def paint(self, image_index: int, segment_id: int, mask: np.ndarray, erase: bool = False,
              overwrite: bool = False) -> None:
        """Brush edit of one segment.

        erase=False: the segment gains the unlabelled pixels of ``mask`` (with ``overwrite=True`` it also takes
        pixels from other segments; a segment left with no pixel is removed).
        erase=True: the segment's pixels inside ``mask`` become unlabelled (an emptied segment is removed).
        Nothing is recorded if no pixel changes.
        """
        entry = self._entry(image_index)
        self._segment(entry, segment_id)
        m = self._check_mask(entry, mask)
        arr = entry._array()
        if erase:
            change = m & (arr == segment_id)
        elif overwrite:
            change = m & (arr != segment_id)
        else:
            change = m & (arr == 0)
        box = _bbox(change)
        if box is None:
            return
        y0, y1, x0, x1 = box
        sub = change[y0:y1, x0:x1]
        patch_before = arr[y0:y1, x0:x1]
        losers = {segment_id} if erase else set(np.unique(patch_before[sub]).tolist()) - {0}
        value = 0 if erase else segment_id

        def fn(patch):
            patch[sub] = value
            return patch

        # a segment that loses pixels is removed if none remain anywhere in the map
        seg_after: dict[int, Optional[Segment]] = {}
        for sid in losers:
            outside = np.count_nonzero(arr == sid) - np.count_nonzero(patch_before[sub] == sid)
            if outside == 0:
                seg_after[sid] = None
        self._commit(self._image_step("paint", image_index, fn, box, seg_after))

    @_writes
    def fill_gaps(self, image_index: int, max_width: Optional[int] = None) -> int:
        """Give the thin unlabelled gaps between segments (strips narrower than about ``2 * max_width`` px and
        specks, see :mod:`annotator.gaps`) to the nearest segment; wider unlabelled areas stay. One undo step (none
        if there is no gap). ``max_width`` defaults to half a percent of the image's long side. Returns the number
        of pixels filled."""
        entry = self._entry(image_index)
        arr = entry._array()
        width = gaps.default_gap_width(*arr.shape) if max_width is None else int(max_width)
        fill = gaps.gap_labels(arr, width)
        box = _bbox(fill > 0)
        if box is None:
            return 0
        y0, y1, x0, x1 = box
        sub_fill = fill[y0:y1, x0:x1]
        sub = sub_fill > 0

        def fn(patch):
            patch[sub] = sub_fill[sub]
            return patch

        self._commit(self._image_step("fill_gaps", image_index, fn, box, {}))
        return int(np.count_nonzero(sub))

    @_writes
    def set_segment_mask(self, image_index: int, segment_id: int, mask: np.ndarray) -> int:
        """Make ``mask`` the segment's pixels (an outline edited as a polygon): its pixels outside ``mask``
        become unlabelled, the unlabelled pixels of ``mask`` join it; pixels of other segments never change.
        One undo step (none if no pixel changes); a segment left with no pixel is removed. Returns the number of
        pixels of ``mask`` not taken because they belong to other segments."""
        entry = self._entry(image_index)
        self._segment(entry, segment_id)
        m = self._check_mask(entry, mask)
        arr = entry._array()
        own = arr == segment_id
        change = (own & ~m) | (m & (arr == 0))
        blocked = int(np.count_nonzero(m & (arr != 0) & ~own))
        box = _bbox(change)
        if box is None:
            return blocked
        y0, y1, x0, x1 = box
        sub = change[y0:y1, x0:x1]
        gained = m[y0:y1, x0:x1]

        def fn(patch):
            patch[sub] = np.where(gained[sub], segment_id, 0)
            return patch

        gone = not (own & m).any() and not (m & (arr == 0)).any()
        self._commit(self._image_step("set_segment_mask", image_index, fn, box, {segment_id: None} if gone else {}))
        return blocked

    @_writes
    def set_segment_category(self, image_index: int, segment_id: int, category_id: int) -> None:
        """Change a segment's category."""
        entry = self._entry(image_index)
        seg = self._segment(entry, segment_id)
        self.category(category_id)
        if seg.category_id == category_id:
            return
        self._commit(self._image_step("set_segment_category", image_index, None, None,
                                      {segment_id: replace(seg, category_id=category_id)}))

    @_writes
    def set_segment_crowd(self, image_index: int, segment_id: int, iscrowd: bool) -> None:
        """Mark a segment as a crowd region (COCO iscrowd)."""
        entry = self._entry(image_index)
        seg = self._segment(entry, segment_id)
        if seg.iscrowd == bool(iscrowd):
            return
        self._commit(self._image_step("set_segment_crowd", image_index, None, None,
                                      {segment_id: replace(seg, iscrowd=bool(iscrowd))}))

    # ---------------------------------------------------------------- category edits
    def _category_step(self, name: str, new: Category) -> None:
        old = next((replace(c) for c in self.categories if c.id == new.id), None)
        self._commit(_Step(name, -1, cat_before={new.id: old}, cat_after={new.id: new}))

    @_writes
    def add_category(self, name: str, color: Optional[Sequence[int]] = None, isthing: bool = True) -> int:
        """Add a category; returns its id (max id + 1). ``color`` RGB, default a distinct generated colour."""
        cid = max((c.id for c in self.categories), default=0) + 1
        if color is None:
            color = default_color(len(self.categories))
        self._category_step("add_category", Category(cid, str(name), _color(color), bool(isthing)))
        return cid

    @_writes
    def rename_category(self, category_id: int, name: str) -> None:
        self._category_step("rename_category", replace(self.category(category_id), name=str(name)))

    @_writes
    def recolor_category(self, category_id: int, color: Sequence[int]) -> None:
        self._category_step("recolor_category", replace(self.category(category_id), color=_color(color)))

    @_writes
    def set_category_isthing(self, category_id: int, isthing: bool) -> None:
        self._category_step("set_category_isthing", replace(self.category(category_id), isthing=bool(isthing)))

    @_writes
    def delete_category(self, category_id: int, move_to: Optional[int] = None) -> int:
        """Remove a category. Its segments, on every image, move to category `move_to`; a category still in use
        is refused (ValueError saying how many segments use it) without one. The last category cannot go.
        One undo step, which puts the category back in its place. Returns the number of segments moved."""
        old = replace(self.category(category_id))
        if len(self.categories) == 1:
            raise ValueError(f"{old.name!r} is the last category: add another before deleting it")
        users = {i: [sid for sid, seg in e.segments.items() if seg.category_id == category_id]
                 for i, e in enumerate(self.images)}
        users = {i: sids for i, sids in users.items() if sids}
        n = sum(len(sids) for sids in users.values())
        if n and move_to is None:
            raise ValueError(f"category {old.name!r} is used by {n} segment{'s' if n != 1 else ''} on {len(users)} "
                             f"image{'s' if len(users) != 1 else ''}: say which category they move to")
        if move_to is not None:
            if move_to == category_id:
                raise ValueError("a category's segments cannot move to the category being deleted")
            self.category(move_to)
        image_segs = {i: ({sid: replace(self.images[i].segments[sid]) for sid in sids},
                          {sid: replace(self.images[i].segments[sid], category_id=move_to) for sid in sids})
                      for i, sids in users.items()}
        order = [c.id for c in self.categories]
        self._commit(_Step("delete_category", -1, cat_before={category_id: old}, cat_after={category_id: None},
                           image_segs=image_segs, cat_order=(order, [c for c in order if c != category_id])))
        return n

    # ---------------------------------------------------------------- undo / redo
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _describe(self, step: "_Step") -> str:
        what = step.name.replace("_", " ")
        if 0 <= step.image_index < len(self.images):
            what += f" on {self.images[step.image_index].name}"
        return what

    def undo_description(self) -> Optional[str]:
        """What undo would undo, in words ("add segment on a.png"); None if nothing."""
        return self._describe(self._undo[-1]) if self._undo else None

    def redo_description(self) -> Optional[str]:
        """What redo would redo, in words; None if nothing."""
        return self._describe(self._redo[-1]) if self._redo else None

    @_writes
    def undo(self) -> bool:
        """Undo the last edit (saved, listeners told "undo"); False if there is nothing to undo."""
        if not self._undo:
            return False
        step = self._undo.pop()
        self._apply_step(step, forward=False)
        self._redo.append(step)
        self.save()
        self._notify("undo", step.image_index)
        return True

    @_writes
    def redo(self) -> bool:
        """Redo the last undone edit; False if there is nothing to redo."""
        if not self._redo:
            return False
        step = self._redo.pop()
        self._apply_step(step, forward=True)
        self._undo.append(step)
        self.save()
        self._notify("redo", step.image_index)
        return True


def _color(color: Sequence[int]) -> tuple[int, int, int]:
    c = tuple(int(v) for v in color)
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise ValueError(f"colour must be 3 ints in 0..255, got {color!r}")
    return c  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- parsing
def _parse_project(data, path: Path) -> tuple[list[ImageEntry], list[Category], int]:
    """Validate project.json content; raises ProjectError naming ``path`` and the problem."""
    def bad(msg: str) -> ProjectError:
        return ProjectError(f"{path}: {msg}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(data, dict):
        raise bad("top level must be a JSON object")
    if data.get("format") != FORMAT_NAME:
        raise bad(f"not an annotator project (format is {data.get('format')!r}, expected {FORMAT_NAME!r})")
    version = data.get("version")
    if not is_int(version) or version > FORMAT_VERSION or version < 1:
        raise bad(f"unsupported project version {version!r} (this program reads version {FORMAT_VERSION})")
    gen = data.get("label_generation", 0)
    if not is_int(gen) or gen < 0:
        raise bad("label_generation must be a non-negative integer")
    cats_raw = data.get("categories")
    if not isinstance(cats_raw, list):
        raise bad("'categories' must be a list")
    categories = []
    for k, c in enumerate(cats_raw):
        where = f"categories[{k}]"
        if not isinstance(c, dict):
            raise bad(f"{where} must be an object")
        if not is_int(c.get("id")) or c["id"] <= 0:
            raise bad(f"{where}.id must be a positive integer")
        if not isinstance(c.get("name"), str):
            raise bad(f"{where}.name must be a string")
        col = c.get("color")
        if not (isinstance(col, list) and len(col) == 3 and all(is_int(v) and 0 <= v <= 255 for v in col)):
            raise bad(f"{where}.color must be 3 integers in 0..255")
        if not isinstance(c.get("isthing", True), (bool, int)):
            raise bad(f"{where}.isthing must be true or false")
        categories.append(Category(c["id"], c["name"], tuple(col), bool(c.get("isthing", True))))
    cat_ids = [c.id for c in categories]
    if len(set(cat_ids)) != len(cat_ids):
        raise bad("category ids are not unique")
    imgs_raw = data.get("images")
    if not isinstance(imgs_raw, list):
        raise bad("'images' must be a list")
    project_dir = path.parent
    images = []
    for k, im in enumerate(imgs_raw):
        where = f"images[{k}]"
        if not isinstance(im, dict):
            raise bad(f"{where} must be an object")
        if not isinstance(im.get("path"), str) or not im["path"]:
            raise bad(f"{where}.path must be a non-empty string")
        for key in ("width", "height"):
            if not is_int(im.get(key)) or im[key] <= 0:
                raise bad(f"{where}.{key} must be a positive integer")
        lab = im.get("labels")
        if lab is not None:
            if not isinstance(lab, str) or os.path.isabs(lab) or ".." in Path(lab).parts:
                raise bad(f"{where}.labels must be a path inside the project folder or null")
        count = im.get("labelled_pixels", 0)
        if not is_int(count) or count < 0:
            raise bad(f"{where}.labelled_pixels must be a non-negative integer")
        segs_raw = im.get("segments")
        if not isinstance(segs_raw, list):
            raise bad(f"{where}.segments must be a list")
        segs: dict[int, Segment] = {}
        for j, s in enumerate(segs_raw):
            sw = f"{where}.segments[{j}]"
            if not isinstance(s, dict):
                raise bad(f"{sw} must be an object")
            if not is_int(s.get("id")) or not 0 < s["id"] <= MAX_SEGMENT_ID:
                raise bad(f"{sw}.id must be an integer in 1..{MAX_SEGMENT_ID}")
            if s["id"] in segs:
                raise bad(f"{sw}.id {s['id']} is used twice in the same image")
            if s.get("category_id") not in cat_ids:
                raise bad(f"{sw}.category_id {s.get('category_id')!r} is not a known category")
            segs[s["id"]] = Segment(s["id"], s["category_id"], bool(s.get("iscrowd", 0)))
        if lab is None and segs:
            raise bad(f"{where} lists segments but has no label map")
        # images move with the project folder: prefer the relative path when it exists
        img_path = im["path"]
        rel = im.get("rel_path")
        if isinstance(rel, str) and (project_dir / rel).is_file():
            img_path = os.path.normpath(os.fspath((project_dir / rel).resolve()))
        images.append(ImageEntry(img_path, im["width"], im["height"], segs, lab, count))
    return images, categories, gen
