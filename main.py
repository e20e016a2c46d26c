"""Start the annotator, or run one of its headless jobs.

    python main.py [IMAGE | FOLDER | PROJECT]           the desktop annotator
    python main.py segment IMAGE [--out PNG] [--project-dir DIR]
                                                        auto-segment one image, write an overlay PNG; with
                                                        --project-dir also queue the segments in that project
                                                        for review (the annotator shows them when it opens)
    python main.py auto IMAGES_DIR --out OUT_DIR [--shard K/N]
                                                        auto-segment a folder (or part K of N of it) into a
                                                        COCO panoptic export
    python main.py merge OUT1 OUT2 ... --out OUT_DIR    merge COCO panoptic exports (e.g. shards) into one
    python main.py export FORMAT PROJECT --out OUT      export a project: panoptic, instances, labelme, yolo,
                                                        masks (see `python main.py export --help`)
    python main.py finetune PROJECT [--steps N] ...     fine-tune the net on the project's accepted segments
                                                        (exported as COCO panoptic for train.finetune; see
                                                        `python main.py finetune --help`)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# OpenCV's own decode limit, as a backstop behind train.readers.MAX_PIXELS (which refuses large images from their
# header) for files whose header that check cannot parse. OpenCV reads it once, when cv2 is imported: set it here,
# before anything imports cv2. Keep equal to train.readers.MAX_PIXELS (tests/test_image_limits.py checks).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "50000000")


def _load_segmenter(weights: str | None, random_init: bool = False):
    from model import Segmenter, WeightsError

    if random_init:
        return Segmenter.random_init(seed=0)  # an untrained net: plumbing tests and demos only
    try:
        return Segmenter.from_pretrained(weights)
    except WeightsError as exc:
        sys.exit(f"error: {exc}")


def overlay(image, labels, alpha: float = 0.5):
    """RGB image with each segment tinted in its own colour and outlined."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    colours = rng.integers(40, 256, (int(labels.max()) + 1, 3)).astype(np.uint8)
    colours[0] = 0
    tint = colours[labels]
    out = image.copy()
    seg = labels > 0
    out[seg] = (image[seg] * (1 - alpha) + tint[seg] * alpha).astype(np.uint8)
    edges = cv2.morphologyEx(labels.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = 255
    return out


def cmd_segment(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="main.py segment", description="Auto-segment one image (headless).")
    p.add_argument("image")
    p.add_argument("--out", help="overlay PNG to write (default: IMAGE_STEM_segments.png next to the image, "
                                 "or in the current folder if that is not writable)")
    p.add_argument("--weights", help="weights file (default: the bundled ones)")
    p.add_argument("--project-dir", metavar="DIR",
                   help="also queue the segments as auto-segment proposals of IMAGE in the project in DIR (made "
                        "there if there is none), so `python main.py IMAGE --project-dir DIR` opens the "
                        "annotator on them for review. Accepted segments are never changed; proposals not "
                        "reviewed yet are replaced")
    p.add_argument("--random-init", action="store_true", help="an untrained net (tests and demos only)")
    a = p.parse_args(argv)
    import cv2

    from annotator.document import ProjectError
    from train.readers import read_image_rgb
    from train.sample import DataError

    try:
        image = read_image_rgb(a.image)
    except DataError as exc:
        sys.exit(f"error: {exc}")
    project = index = None
    if a.project_dir:
        from annotator.batch import project_for_image

        try:  # before the net loads: a project held by an open window fails at once, naming it
            project, index = project_for_image(a.image, a.project_dir)
        except (ProjectError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        seg = _load_segmenter(a.weights, a.random_init)
        t0 = time.perf_counter()
        labels = seg.segment_image(image)
        dt = time.perf_counter() - t0
        out = Path(a.out) if a.out else Path(f"{Path(a.image).stem}_segments.png")
        ok = cv2.imwrite(str(out), cv2.cvtColor(overlay(image, labels), cv2.COLOR_RGB2BGR))
        if not ok:
            sys.exit(f"error: could not write {out}")
        print(f"{a.image}: {int(labels.max())} segments, {100 * (labels > 0).mean():.1f}% of the image labelled, "
              f"{dt:.2f} s on {seg.device}; overlay written to {out}")
        if project is not None:
            from annotator.batch import queue_proposals

            try:
                print(queue_proposals(project, index, labels))
            except (ProjectError, OSError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
    finally:
        if project is not None:
            project.close()
    return 0


def cmd_auto(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="main.py auto",
                                description="Auto-segment every image of a folder into a COCO panoptic export "
                                            "(resumable), which the annotator opens for correction.")
    p.add_argument("images_dir")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--weights", help="weights file (default: the bundled ones)")
    p.add_argument("--random-init", action="store_true", help="an untrained net (tests and demos only)")
    p.add_argument("--shard", metavar="K/N",
                   help="process only part K of N (1 <= K <= N) of the images, e.g. K = $SLURM_ARRAY_TASK_ID "
                        "of a job array or $JOB_COMPLETION_INDEX + 1 of a Kubernetes indexed job, each into its "
                        "own --out; `main.py merge` joins the N exports. An image's part comes from a hash of its "
                        "file name (SHA-1), not its place in the sorted list, so it stays in its part when images "
                        "are added or removed; each part runs in sorted name order. On a small folder a part may "
                        "be empty")
    a = p.parse_args(argv)
    from annotator.batch import parse_shard, run_auto
    from annotator.document import ProjectError, list_images, lock_project_dir, no_images_message

    try:
        shard = parse_shard(a.shard) if a.shard else None
    except ValueError as exc:
        p.error(str(exc))
    try:
        if Path(a.images_dir).is_dir() and not list_images(a.images_dir):
            raise ProjectError(no_images_message(a.images_dir))  # before making the output folder or loading the net
        Path(a.out).mkdir(parents=True, exist_ok=True)
        lock = lock_project_dir(a.out)  # before loading the net: an output folder in use fails at once
    except (ProjectError, OSError) as exc:  # e.g. ProjectLockedError: names the holder's host and PID
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        json_path = run_auto(a.images_dir, a.out, segmenter=_load_segmenter(a.weights, a.random_init),
                             progress=True, shard=shard)
    except (ProjectError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        lock.release()
    print(f"COCO panoptic export written: {json_path}")
    return 0


def cmd_merge(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="main.py merge",
                                description="Merge COCO panoptic exports (e.g. the parts of `main.py auto --shard "
                                            "K/N`) into one: categories reconciled by name, images renumbered in "
                                            "file-name order, an image in two parts refused. Written staged: on an "
                                            "error OUT_DIR is left as it was.")
    p.add_argument("parts", nargs="+", help="the parts: folders holding panoptic.json, or the JSON files")
    p.add_argument("--out", required=True, help="output folder (not one of the parts)")
    p.add_argument("--image-dir", help="the folder of the images, when the parts name different ones")
    a = p.parse_args(argv)
    from annotator.coco_io import merge_coco_panoptic
    from annotator.document import ProjectError, lock_project_dir

    try:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        lock = lock_project_dir(a.out)  # no batch run or second merge writes there meanwhile
    except (ProjectError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        json_path = merge_coco_panoptic(a.parts, a.out, image_dir=a.image_dir)
    except (ProjectError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        lock.release()
    import json

    n = len(json.loads(Path(json_path).read_text())["images"])
    print(f"merged {len(a.parts)} exports ({n} images) into {json_path}")
    return 0


EXPORT_FORMATS = ("panoptic", "instances", "labelme", "yolo", "masks")


def cmd_export(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="main.py export",
                                description="Export a project's accepted segments (proposals not reviewed yet are "
                                            "not segments). The project is only read: it may be open in the "
                                            "annotator meanwhile.")
    p.add_argument("format", choices=EXPORT_FORMATS,
                   help="panoptic: COCO panoptic (OUT/panoptic.json + PNGs); instances: COCO instances "
                        "(OUT/instances.json, RLE); labelme: a JSON per image; yolo: YOLO segmentation "
                        "(images/, labels/, data.yaml); masks: class and instance PNGs")
    p.add_argument("project", help="the project folder (or its project.json)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="PX",
                   help="labelme / yolo: polygon simplification in pixels (cv2.approxPolyDP); 0, the default, "
                        "keeps every corner: lossless")
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help="yolo: the share of images in the val split (0 < F < 1; default 0.2), chosen by a hash "
                        "of each image's file name, so an image keeps its split when images are added")
    p.add_argument("--background", action="store_true",
                   help="yolo: also export the images without any segment, with empty label files (YOLO learns "
                        "them as showing no object: only for images known to show none). Default: left out")
    a = p.parse_args(argv)
    from annotator import coco_io, mask_io, polygon_io
    from annotator.document import Project, ProjectError

    if a.format not in ("labelme", "yolo") and a.tolerance:
        p.error("--tolerance is for the polygon formats (labelme, yolo)")
    if a.format != "yolo" and (a.val_fraction is not None or a.background):
        p.error("--val-fraction and --background are for yolo")
    try:
        polygon_io.check_tolerance(a.tolerance)
        val_fraction = polygon_io.DEFAULT_VAL_FRACTION if a.val_fraction is None else a.val_fraction
        polygon_io.yolo_val_split([], val_fraction)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        project = Project.open(a.project, read_only=True)
        out = Path(a.out)
        if a.format == "panoptic":
            where = coco_io.export_coco_panoptic(project, out)
        elif a.format == "instances":
            where = coco_io.export_coco_instances(project, out / "instances.json")
        elif a.format == "labelme":
            where = f"{len(polygon_io.export_labelme(project, out, a.tolerance))} labelme files in {out}"
        elif a.format == "yolo":
            path = polygon_io.export_yolo_seg(project, out, a.tolerance, val_fraction=val_fraction,
                                              background=a.background)
            where = f"{path}: {polygon_io.plan_yolo_export(project, val_fraction, a.background).describe()}"
        else:
            where = mask_io.export_segmentation_masks(project, out)
    except (ProjectError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in project.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"exported {a.format}: {where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "segment":
        return cmd_segment(argv[1:])
    if argv and argv[0] == "auto":
        return cmd_auto(argv[1:])
    if argv and argv[0] == "merge":
        return cmd_merge(argv[1:])
    if argv and argv[0] == "export":
        return cmd_export(argv[1:])
    if argv and argv[0] == "finetune":
        from annotator.finetune_job import main as finetune_main

        return finetune_main(argv[1:], prog_argv=[sys.executable, "main.py", "finetune"])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    from annotator.app import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
