"""Export (COCO panoptic, COCO instances, labelme JSON, YOLO segmentation, segmentation masks) and import (COCO
panoptic, labelme) of the main window's project."""
from __future__ import annotations

import os
from typing import Callable, Optional, TypeVar

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication, QFileDialog, QMessageBox, QProgressDialog

from annotator.staging import Cancelled, Progress

T = TypeVar("T")


class FileActionsMixin:
    """Methods of MainWindow (annotator._qt.main_window), kept apart by topic; they use its widgets and state."""

    # ================================================================================ export / import
    def _with_progress(self, title: str, job: Callable[[Progress], T]) -> T:
        """Run `job(progress)` with a progress dialog that has Cancel (shown when the job takes more than about
        half a second). The window stays drawn while it runs; Cancel makes the job raise Cancelled."""
        dialog = QProgressDialog(title, "Cancel", 0, 1000, self)
        dialog.setWindowTitle(title)
        dialog.setWindowModality(Qt.WindowModal)  # no edits to the project while it is being written out
        dialog.setMinimumDuration(500)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        self.export_dialog = dialog  # for tests

        def progress(done: int, total: int) -> bool:
            dialog.setLabelText(f"{title}: {min(done + 1, total)} of {total}" if done < total else
                                f"{title}: finishing")
            dialog.setValue(int(1000 * done / max(1, total)))
            QApplication.processEvents()
            return not dialog.wasCanceled()

        try:
            return job(progress)
        finally:
            dialog.close()
            dialog.deleteLater()
            self.export_dialog = None

    def _dialog_dir(self, sub: str = "") -> str:
        """Where file dialogs start: the project folder (or a new sub-folder name inside it), else the cwd."""
        if self.project is None:
            return os.getcwd()
        return os.path.join(os.fspath(self.project.project_dir), sub) if sub else os.fspath(self.project.project_dir)

    def _export(self, title: str, job: Callable[[Progress], T], cancelled: str) -> Optional[T]:
        """`job` under a progress dialog; a cancel or a failure (disk full, permissions, …) is reported, gives None
        and leaves the project as it is."""
        try:
            return self._with_progress(title, job)
        except Cancelled:
            self.status(cancelled)
        except Exception as exc:  # noqa: BLE001 - any failure is the person's to see, not a crash
            self.notify(f"Export failed: {exc}", error=True)
        return None

    def _exported(self, text: str) -> None:
        """The status line after an export, saying what it left out: only accepted segments are exported."""
        counts = self._proposal_counts()
        if counts:
            n, images = sum(counts.values()), len(counts)
            text += (f" ({n} auto-segment proposal{'s' if n != 1 else ''} on {images} image{'s' if images != 1 else ''}"
                     " not reviewed yet, so not exported)")
        self.status(text)

    def export_panoptic(self, out_dir: Optional[str] = None, instances: Optional[bool] = None) -> Optional[str]:
        from annotator import coco_io

        if self.project is None:
            return None
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self, "Export COCO panoptic to folder", self._dialog_dir())
            if not out_dir:
                return None
            if instances is None:
                instances = QMessageBox.question(self, "Export", "Also write COCO instances (things, RLE)?") == QMessageBox.Yes
        path = self._export("Exporting COCO panoptic",
                            lambda p: coco_io.export_coco_panoptic(self.project, out_dir, progress=p),
                            f"Export cancelled: nothing was written to {out_dir}")
        if path is None:
            return None
        if instances:
            try:
                self._with_progress("Exporting COCO instances", lambda p: coco_io.export_coco_instances(
                    self.project, os.path.join(out_dir, "instances.json"), progress=p))
            except Cancelled:
                self.status(f"Exported COCO panoptic to {path}; the instances export was cancelled")
                return path
            except Exception as exc:
                self.notify(f"Exported COCO panoptic to {path}, but the instances export failed: {exc}", error=True)
                return path
        self._exported(f"Exported COCO panoptic to {path}")
        return path

    def export_instances(self, out_path: Optional[str] = None) -> Optional[str]:
        from annotator import coco_io

        if self.project is None:
            return None
        if out_path is None:
            out_path, _ = QFileDialog.getSaveFileName(self, "Export COCO instances",
                                                    self._dialog_dir("instances.json"), "JSON (*.json)")
            if not out_path:
                return None
        path = self._export("Exporting COCO instances",
                            lambda p: coco_io.export_coco_instances(self.project, out_path, progress=p),
                            f"Export cancelled: {out_path} was not written")
        if path is not None:
            self._exported(f"Exported COCO instances to {path}")
        return path

    def import_panoptic(self, json_path: Optional[str] = None, image_dir: Optional[str] = None,
                        project_dir: Optional[str] = None) -> bool:
        from annotator import coco_io

        if json_path is None:
            json_path, _ = QFileDialog.getOpenFileName(self, "Import COCO panoptic JSON", self._dialog_dir(),
                                                       "JSON (*.json)")
            if not json_path:
                return False
            project_dir = QFileDialog.getExistingDirectory(self, "Folder for the new project", self._dialog_dir())
            if not project_dir:
                return False
        kwargs = {}
        if project_dir is not None:
            kwargs["project_dir"] = project_dir
        try:
            project = self._with_progress("Importing COCO panoptic", lambda p: coco_io.import_coco_panoptic(
                json_path, image_dir, progress=p, **kwargs))
        except Cancelled:
            self.status("Import cancelled: no project was made")
            return False
        except Exception as exc:
            self.notify(f"Cannot import {json_path}:\n{exc}", error=True)
            return False
        self.set_project(project)
        return True

    def export_labelme(self, out_dir: Optional[str] = None) -> Optional[list]:
        """labelme JSON files, one per labelled image (annotator.polygon_io)."""
        from annotator import polygon_io

        if self.project is None:
            return None
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self, "Export labelme JSON to folder", self._dialog_dir())
            if not out_dir:
                return None
        paths = self._export("Exporting labelme JSON",
                             lambda p: polygon_io.export_labelme(self.project, out_dir, progress=p),
                             f"Export cancelled: nothing was written to {out_dir}")
        if paths is not None:
            self._exported(f"Exported {len(paths)} labelme JSON files to {out_dir}")
        return paths

    def export_yolo(self, out_dir: Optional[str] = None) -> Optional[str]:
        """A YOLO segmentation data set (images/, labels/, data.yaml; annotator.polygon_io)."""
        from annotator import polygon_io

        if self.project is None:
            return None
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self, "Export YOLO segmentation to folder", self._dialog_dir())
            if not out_dir:
                return None
        path = self._export("Exporting YOLO segmentation",
                            lambda p: polygon_io.export_yolo_seg(self.project, out_dir, progress=p),
                            f"Export cancelled: nothing was written to {out_dir}")
        if path is not None:
            self._exported(f"Exported YOLO segmentation labels: {path}")
        return path

    def export_masks(self, out_dir: Optional[str] = None) -> Optional[str]:
        """Class and instance PNGs per image with a label map (CVAT's "Segmentation mask 1.1"; annotator.mask_io)."""
        from annotator import mask_io

        if self.project is None:
            return None
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self, "Export segmentation masks to folder", self._dialog_dir())
            if not out_dir:
                return None
        path = self._export("Exporting segmentation masks",
                            lambda p: mask_io.export_segmentation_masks(self.project, out_dir, progress=p),
                            f"Export cancelled: nothing was written to {out_dir}")
        if path is not None:
            self._exported(f"Exported segmentation masks (class and instance PNGs) to {out_dir}")
        return path

    def import_labelme(self, source: Optional[str] = None, project_dir: Optional[str] = None) -> bool:
        """A folder of labelme JSON files becomes a new project (opened in this window)."""
        from annotator import polygon_io

        if source is None:
            source = QFileDialog.getExistingDirectory(self, "Folder of labelme JSON files", self._dialog_dir())
            if not source:
                return False
        if project_dir is None:
            project_dir = QFileDialog.getExistingDirectory(self, "Folder for the new project", source)
            if not project_dir:
                return False
        try:
            project = self._with_progress("Importing labelme files",
                                          lambda p: polygon_io.import_labelme(source, project_dir, progress=p))
        except Cancelled:
            self.status("Import cancelled: no project was made")
            return False
        except Exception as exc:
            self.notify(f"Cannot import {source}:\n{exc}", error=True)
            return False
        self.set_project(project)  # shows the import's warnings (skipped shapes)
        return True
