"""Long exports that can be cancelled and never leave half an export behind. No Qt here.

An exporter reports ``progress(done, total)`` before each image; the callback returns False to cancel, and the
exporter raises :class:`Cancelled`. Its files are written under a hidden folder inside the output folder
(:class:`StagedOutput`) and moved into place only when every image is done, so a cancelled or failed export
leaves the output folder exactly as it was, an earlier export in it included.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Union

from .atomic_files import fsync_dir

PathLike = Union[str, os.PathLike]
Progress = Callable[[int, int], bool]  # (images done, images in all) -> go on?


class Cancelled(Exception):
    """The user cancelled a long export; nothing it would have written was left behind."""


def report(progress: Optional[Progress], done: int, total: int) -> None:
    """Tell `progress` how far the job is; raise Cancelled if it answers False."""
    if progress is not None and progress(done, total) is False:
        raise Cancelled(f"cancelled after {done} of {total}")


class StagedOutput:
    """Files written under ``out_dir/.export-XXXX/`` and moved to the same relative paths in ``out_dir`` on
    :meth:`commit` (in the order they were asked for, so an index file asked for last lands last). Used as a
    context manager: commit when the block ends normally, discard when it raises (Cancelled, disk full, ...)."""

    def __init__(self, out_dir: PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=".export-", dir=os.fspath(self.out_dir)))
        self._files: list[str] = []

    def path(self, relative: str) -> Path:
        """Where to write the file that will end up at ``out_dir/relative``."""
        p = self.stage / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        if relative not in self._files:
            self._files.append(relative)
        return p

    def final(self, relative: str) -> Path:
        """Where ``relative`` will be after the commit."""
        return self.out_dir / relative

    def commit(self) -> None:
        folders = set()
        for rel in self._files:
            src, dst = self.stage / rel, self.out_dir / rel
            if not src.exists():
                continue  # asked for but not written (an exporter that skipped it)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            folders.add(dst.parent)
        for folder in folders:  # the renames reach the disk, as atomic_write_bytes' own do
            fsync_dir(folder)
        shutil.rmtree(self.stage, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self) -> "StagedOutput":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
