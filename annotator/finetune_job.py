"""Fine-tune the net on a project's accepted segments.

    python main.py finetune PROJECT [--out DIR] [--base WEIGHTS] [--steps N] ...

`train/` reads data sets, never projects: the project is exported as COCO panoptic (annotator.coco_io, staged,
so a half-written export is never read) into the run's data folder OUT/data/, and that export is what
train.finetune trains on and measures with; the options are train.finetune's (`python -m train finetune --help`).
Default OUT: PROJECT/finetune/<timestamp>/.

The window runs this module as a separate process (build_command) into a scratch folder in the system's temp
folder, never into the project: a run leaves nothing in the project unless the person chooses to use its weights
(keep_result copies them, with their report and provenance, to PROJECT/finetune/<timestamp>/; discard removes the
scratch folder). Plain Python, no Qt.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike

SCRATCH_PREFIX = "pointer-annotator-finetune-"
# What a kept run brings into the project: the weights and what says where they came from and how they did
# (together about the weights' size; the run's data copy and logs stay behind).
KEPT_FILES = ("weights.safetensors", "report.json", "provenance.json", "log.csv")


class ProjectExport:
    """train.finetune's data source for a project: called with the run's data folder, it exports the project
    there as COCO panoptic and returns the JSON path. Opens the project read-only (no lock), so it works while the
    annotator keeps editing it."""

    def __init__(self, project_dir: PathLike) -> None:
        self.project_dir = Path(project_dir)

    def __str__(self) -> str:
        return os.path.abspath(self.project_dir)

    def __call__(self, data_dir: Path) -> str:
        from train.finetune import FinetuneError

        from .coco_io import export_coco_panoptic
        from .document import Project, ProjectError

        try:
            project = Project.open(self.project_dir, read_only=True)
            return export_coco_panoptic(project, data_dir)
        except (ProjectError, OSError) as e:
            raise FinetuneError(f"exporting the project failed: {e}") from e


def build_command(project_dir: PathLike, out_dir: PathLike, **options: Any) -> list[str]:
    """argv that fine-tunes on the project as a separate process; options as train.finetune.build_command's.
    Progress: OUT/progress.jsonl; cancel: OUT/STOP (train.finetune)."""
    from train.finetune import build_command as train_command

    cmd = train_command(project_dir, out_dir, **options)
    return [cmd[0], "-m", "annotator.finetune_job", *cmd[4:]]


def make_scratch_dir() -> Path:
    """A new, empty run folder in the system's temp folder (outside every project)."""
    return Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))


def discard(run_dir: PathLike) -> None:
    """Remove a run's scratch folder and everything in it (the weights too)."""
    shutil.rmtree(run_dir, ignore_errors=True)


def new_result_dir(project_dir: PathLike) -> Path:
    """PROJECT/finetune/<timestamp>/ that does not exist yet (a suffix when two runs end in the same second)."""
    from train.finetune import default_out_dir

    out = Path(default_out_dir(project_dir))
    cand, k = out, 2
    while cand.exists():
        cand = out.with_name(f"{out.name}-{k}")
        k += 1
    return cand


def keep_result(run_dir: PathLike, project_dir: PathLike) -> Path:
    """Copy a run's weights, report, provenance and log into a new PROJECT/finetune/<timestamp>/ and return the
    kept weights' path. The folder appears complete or not at all (copied beside it, then renamed); the paths in
    report.json and provenance.json name the kept weights."""
    run_dir = Path(run_dir)
    dest = new_result_dir(project_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))
    try:
        for name in KEPT_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, part / name)
        if not (part / "weights.safetensors").is_file():
            raise FileNotFoundError(f"{run_dir / 'weights.safetensors'}: the run wrote no weights")
        new = os.path.abspath(dest / "weights.safetensors")
        for name in ("report.json", "provenance.json"):
            path = part / name
            if path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                if "weights" in data:  # the run's own copy, which discard() removes
                    data["weights"] = new
                if "out" in data:
                    data["out"] = os.path.abspath(dest)
                path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(part, dest)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    return dest / "weights.safetensors"


def build_parser():
    from train.finetune import build_parser as train_parser

    p = train_parser()
    p.prog = "python main.py finetune"
    p.description = __doc__
    for action in p._actions:
        if action.dest == "source":
            action.help = "the project folder (or its project.json)"
            action.metavar = "PROJECT"
        elif action.dest == "out":
            action.help = "output folder (default PROJECT/finetune/<timestamp>/)"
    return p


def main(argv: list[str] | None = None, prog_argv: list[str] | None = None) -> int:
    from train.finetune import default_out_dir, run_parsed

    argv = sys.argv[1:] if argv is None else argv
    a = build_parser().parse_args(argv)
    project = Path(a.source)
    if project.name == "project.json":
        project = project.parent
    if a.out is None:
        a.out = os.fspath(default_out_dir(project))
    command = prog_argv or [sys.executable, "-m", "annotator.finetune_job"]
    return run_parsed(a, ProjectExport(project), [*command, *argv])


if __name__ == "__main__":
    sys.exit(main())
