"""Export (COCO panoptic, COCO instances, labelme JSON, YOLO segmentation, segmentation masks) and import (COCO
panoptic, labelme) of the main window's project."""
from __future__ import annotations

import os
from typing import Callable, Optional, TypeVar

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (QApplication, QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                             QFormLayout, QLabel, QLineEdit, QMessageBox, QProgressDialog, QVBoxLayout)

from annotator.staging import Cancelled, Progress

T = TypeVar("T")
# The polygon exports' options the project remembers (Project.settings)
TOLERANCE_KEY = "polygon_tolerance_px"
VAL_FRACTION_KEY = "yolo_val_fraction"
BACKGROUND_KEY = "yolo_background"


def _tolerance_text(tolerance: float) -> str:
    return "polygons lossless" if tolerance == 0 else f"polygons simplified by {tolerance:g} px"


class PolygonExportDialog(QDialog):
    """The options of a labelme or YOLO export: polygon tolerance; for YOLO also the val fraction and whether
    never-labelled images go in as background."""

    def __init__(self, parent, yolo: bool, tolerance: float, val_fraction: float = 0.2,
                 background: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("YOLO export" if yolo else "labelme export")
        form = QFormLayout()
        self.tolerance = QDoubleSpinBox()
        self.tolerance.setRange(0.0, 50.0)
        self.tolerance.setDecimals(2)
        self.tolerance.setSingleStep(0.5)
        self.tolerance.setSuffix(" px")
        self.tolerance.setSpecialValueText("0 px (lossless)")
        self.tolerance.setValue(tolerance)
        self.tolerance.setToolTip("How far a simplified polygon may stray from the segment's outline "
                                  "(cv2.approxPolyDP). 0 keeps every corner: the export reads back exactly.")
        form.addRow("Polygon tolerance:", self.tolerance)
        self.val_fraction = self.background = None
        if yolo:
            self.val_fraction = QDoubleSpinBox()
            self.val_fraction.setRange(0.01, 0.99)
            self.val_fraction.setDecimals(2)
            self.val_fraction.setSingleStep(0.05)
            self.val_fraction.setValue(val_fraction)
            self.val_fraction.setToolTip("The share of images in the val split, chosen by a hash of each file name: "
                                         "an image keeps its split when images are added.")
            form.addRow("Validation fraction:", self.val_fraction)
            self.background = QCheckBox("Also export images without any segment, as background")
            self.background.setChecked(background)
            self.background.setToolTip("YOLO learns such an image as \"nothing to find here\": only for images "
                                       "that really show none of the categories.")
            form.addRow(self.background)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Remembered with this project."))
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def values(self) -> dict:
        out = {"tolerance": float(self.tolerance.value())}
        if self.val_fraction is not None:
            out["val_fraction"] = float(self.val_fraction.value())
            out["background"] = bool(self.background.isChecked())
        return out


class OutputFolderDialog(QFileDialog):
    """Picks the folder an export (or a new project) is written to. Unlike QFileDialog.getExistingDirectory it
    takes the name of a folder that does not exist yet, as a save dialog takes a new file name: the export makes
    the folder (annotator.staging.StagedOutput). Qt's own dialog, as the platform's dialogs refuse such a name."""

    def __init__(self, parent, title: str, start: str) -> None:
        super().__init__(parent, title, start)
        self.setOption(QFileDialog.DontUseNativeDialog, True)
        self.setFileMode(QFileDialog.Directory)
        self.setOption(QFileDialog.ShowDirsOnly, True)
        self.setLabelText(QFileDialog.FileName, "Folder:")
        buttons = self.findChild(QDialogButtonBox)
        self._choose = buttons.button(QDialogButtonBox.Open) if buttons is not None else None
        self._name = self.findChild(QLineEdit, "fileNameEdit")
        if self._name is not None:
            # Connected after Qt's own handler, which disables the button for a folder that does not exist.
            self._name.textChanged.connect(self._allow_a_new_folder)

    def _typed_folder(self) -> str:
        text = os.path.expanduser(self._name.text().strip()) if self._name is not None else ""
        return os.path.join(self.directory().absolutePath(), text) if text else ""

    def _allow_a_new_folder(self, _text: str = "") -> None:
        folder = self._typed_folder()
        if folder and not os.path.exists(folder) and self._choose is not None:
            self._choose.setEnabled(True)

    def accept(self) -> None:
        folder = self._typed_folder()
        if folder and not os.path.exists(folder):
            self._new_folder = os.path.normpath(folder)
            QDialog.accept(self)  # QFileDialog.accept would answer "Directory not found"
            return
        self._new_folder = None
        super().accept()

    def chosen_folder(self) -> str:
        """The folder accepted: a new one typed, else the one Qt selected."""
        if getattr(self, "_new_folder", None):
            return self._new_folder
        chosen = self.selectedFiles()
        return chosen[0] if chosen else ""


def choose_output_folder(parent, title: str, start: str) -> str:
    """The folder to write to, existing or new; "" if the person cancelled."""
    dialog = OutputFolderDialog(parent, title, start)
    if dialog.exec_() != QDialog.Accepted:
        return ""
    return dialog.chosen_folder()


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
            out_dir = choose_output_folder(self, "Export COCO panoptic to folder", self._dialog_dir())
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
            project_dir = choose_output_folder(self, "Folder for the new project", self._dialog_dir())
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

    def _polygon_options(self, yolo: bool, tolerance: Optional[float], val_fraction: Optional[float],
                         background: Optional[bool], ask: bool) -> Optional[dict]:
        """The polygon export's options: those passed, else (``ask``: in a dialog that starts from) the ones this
        project remembers, else the defaults (tolerance 0 px, lossless; val 0.2; no background). The ones used
        are remembered with the project. None if the dialog was cancelled."""
        from annotator import polygon_io

        remembered = self.project.settings
        opts = {"tolerance": tolerance if tolerance is not None else remembered.get(TOLERANCE_KEY, 0.0)}
        if yolo:
            opts["val_fraction"] = (val_fraction if val_fraction is not None else
                                    remembered.get(VAL_FRACTION_KEY, polygon_io.DEFAULT_VAL_FRACTION))
            opts["background"] = bool(background if background is not None else remembered.get(BACKGROUND_KEY, False))
        try:
            opts["tolerance"] = polygon_io.check_tolerance(opts["tolerance"])
            if yolo:
                polygon_io.yolo_val_split([], opts["val_fraction"])  # checks the fraction
        except ValueError:  # a hand-edited project.json: the defaults, not a refused export
            opts = {"tolerance": 0.0, **({"val_fraction": polygon_io.DEFAULT_VAL_FRACTION, "background": False}
                                        if yolo else {})}
        if ask:
            dialog = PolygonExportDialog(self, yolo, **opts)
            if dialog.exec_() != QDialog.Accepted:
                return None
            opts = dialog.values()
        try:
            self.project.set_setting(TOLERANCE_KEY, float(opts["tolerance"]))
            if yolo:
                self.project.set_setting(VAL_FRACTION_KEY, float(opts["val_fraction"]))
                self.project.set_setting(BACKGROUND_KEY, bool(opts["background"]))
        except OSError as exc:  # the export goes on; only the preference is not kept
            self.status(f"Could not remember the export options in the project: {exc}")
        return opts

    def export_labelme(self, out_dir: Optional[str] = None, tolerance: Optional[float] = None) -> Optional[list]:
        """labelme JSON files, one per labelled image (annotator.polygon_io). ``tolerance``: polygon simplification
        in pixels (default: the project's remembered one, else 0: lossless); asked in a dialog when the folder
        is."""
        from annotator import polygon_io

        if self.project is None:
            return None
        ask = out_dir is None and self.confirm_dialogs
        if out_dir is None:
            out_dir = choose_output_folder(self, "Export labelme JSON to folder", self._dialog_dir())
            if not out_dir:
                return None
        opts = self._polygon_options(False, tolerance, None, None, ask)
        if opts is None:
            return None
        paths = self._export("Exporting labelme JSON",
                             lambda p: polygon_io.export_labelme(self.project, out_dir, opts["tolerance"], progress=p),
                             f"Export cancelled: nothing was written to {out_dir}")
        if paths is not None:
            self._exported(f"Exported {len(paths)} labelme JSON files to {out_dir} ({_tolerance_text(opts['tolerance'])})")
        return paths

    def export_yolo(self, out_dir: Optional[str] = None, tolerance: Optional[float] = None,
                    val_fraction: Optional[float] = None, background: Optional[bool] = None) -> Optional[str]:
        """A YOLO segmentation data set (images/ and labels/ split into train/ and val/, data.yaml;
        annotator.polygon_io). Only images with segments unless ``background``; ``val_fraction`` of them (by
        name) for validation; ``tolerance`` as for labelme. Unset options: the project's remembered ones, else
        the defaults; asked in a dialog when the folder is."""
        from annotator import polygon_io

        if self.project is None:
            return None
        ask = out_dir is None and self.confirm_dialogs
        if out_dir is None:
            out_dir = choose_output_folder(self, "Export YOLO segmentation to folder", self._dialog_dir())
            if not out_dir:
                return None
        opts = self._polygon_options(True, tolerance, val_fraction, background, ask)
        if opts is None:
            return None
        plan = polygon_io.plan_yolo_export(self.project, opts["val_fraction"], opts["background"])
        path = self._export("Exporting YOLO segmentation",
                            lambda p: polygon_io.export_yolo_seg(self.project, out_dir, opts["tolerance"], progress=p,
                                                                 val_fraction=opts["val_fraction"],
                                                                 background=opts["background"]),
                            f"Export cancelled: nothing was written to {out_dir}")
        if path is not None:
            self._exported(f"Exported YOLO segmentation {path}: {plan.describe()} ({_tolerance_text(opts['tolerance'])})")
        return path

    def export_masks(self, out_dir: Optional[str] = None) -> Optional[str]:
        """Class and instance PNGs per image with a label map (CVAT's "Segmentation mask 1.1"; annotator.mask_io)."""
        from annotator import mask_io

        if self.project is None:
            return None
        if out_dir is None:
            out_dir = choose_output_folder(self, "Export segmentation masks to folder", self._dialog_dir())
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
            project_dir = choose_output_folder(self, "Folder for the new project", source)
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
