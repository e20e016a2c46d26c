"""Load other weights, and fine-tune on this project in a separate process (the training panel)."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional
from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QDockWidget, QFileDialog

from annotator.finetune_job import discard, keep_result, make_scratch_dir

from .finetune_panel import FinetuneOptionsDialog, FinetunePanel, FinetuneProcess


class ModelActionsMixin:
    """Methods of MainWindow (annotator._qt.main_window), kept apart by topic; they use its widgets and state."""

    # ================================================================================ weights / fine-tuning
    def load_weights(self, path: Optional[str] = None) -> bool:
        """Switch the segmenter to a weights file (file dialog without `path`). The switch happens in the
        worker thread; ``weights_changed`` / ``weights_error`` tell the outcome. Returns whether it was asked."""
        if path is None:
            start = str(Path(self.weights_path).parent) if self.weights_path else ""
            path, _ = QFileDialog.getOpenFileName(self, "Load weights", start, "Weights (*.safetensors);;All files (*)")
            if not path:
                return False
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            self._on_weights_failed(path, f"weights file not found: {path}")
            return False
        self.status(f"Loading weights {path}…")
        self.worker.request_load_weights(path)
        return True

    def _on_weights_loaded(self, path: str, device: str, info: dict) -> None:
        self.weights_path = path
        self._weights_are_bundled = False
        self.device = device
        self._set_device_text()
        steps = info.get("steps") if isinstance(info, dict) else None
        self.status(f"Now using weights {path}" + (f" ({steps} training steps)" if steps is not None else ""))
        if self.finetune_panel is not None and self.finetune_panel.new_weights == path:
            self.finetune_panel.weights_result(True, f"Now using the new weights: {path}")
        self.weights_changed.emit(path)

    def _on_weights_failed(self, path: str, msg: str) -> None:
        text = f"Cannot load weights {path}:\n{msg}\nThe current weights stay in use."
        self.notify(text, error=True)
        if self.finetune_panel is not None and self.finetune_panel.new_weights == path:
            self.finetune_panel.weights_result(False, f"Loading failed: {msg}")
        self.weights_error.emit(text)

    def open_finetune_dialog(self) -> Optional[FinetuneOptionsDialog]:
        """Model ▸ Fine-tune on this project…: the options dialog (non-blocking); Start runs the fine-tune."""
        if self.project is None:
            self.notify("Open a project with some labelled images first.", error=True)
            return None
        if self.finetune_run is not None and self.finetune_run.running:
            self.status("A fine-tuning run is already in progress (see the Fine-tuning panel).")
            self._show_finetune_panel()
            return None
        labelled = sum(1 for entry in self.project.images if entry.segments)
        if labelled < 2:  # the run would refuse too, but only after starting a process (seconds later)
            self.notify(f"Fine-tuning needs at least 2 labelled images (one to train on, one to measure on); this "
                        f"project has {labelled}. Label more images first.", error=True)
            return None
        opts = dict(self.finetune_defaults, base=self.weights_path or "")
        dlg = FinetuneOptionsDialog(opts, self)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.accepted.connect(lambda: self.start_finetune(dlg.options()))
        # `finished` (closed by accept, reject or Esc), not `destroyed`: a slot on `destroyed` can run while the
        # window itself is being torn down, and touching it then crashed the test process once.
        dlg.finished.connect(lambda *_: setattr(self, "finetune_dialog", None))
        self.finetune_dialog = dlg
        dlg.open()
        return dlg

    def start_finetune(self, options: Optional[Dict[str, Any]] = None) -> Optional[FinetuneProcess]:
        """Start fine-tuning the current weights on this project in a separate process (see finetune_panel).
        `options`: train.finetune.build_command keywords; default ``finetune_defaults`` + the loaded weights."""
        if self.project is None:
            return None
        if self.finetune_run is not None and self.finetune_run.running:
            self.status("A fine-tuning run is already in progress.")
            return None
        options = dict(options if options is not None else dict(self.finetune_defaults, base=self.weights_path))
        base = options.get("base")
        if not base or not os.path.isfile(str(base)):
            self.notify(f"Cannot fine-tune: base weights file not found: {base or '(none loaded)'}.\n"
                        "Load weights first (Model ▸ Load weights…).", error=True)
            return None
        try:
            self.project.save()  # the process reads the project from disk
            self.discard_finetune_run()  # a finished run nobody chose from is not kept for ever
            # The run writes into a scratch folder outside the project (a run's weights, checkpoint and data copy
            # come to tens of MB): only weights the person chooses to use come into the project (keep_result).
            out = make_scratch_dir()
            run = FinetuneProcess(self.project.project_dir, out, options, poll_ms=self.finetune_poll_ms, parent=self)
        except (OSError, TypeError, ValueError) as exc:
            self.notify(f"Cannot start fine-tuning: {exc}", error=True)
            return None
        self.finetune_run = run
        self._show_finetune_panel(run)
        run.finished.connect(self._on_finetune_finished)
        run.start()
        self.status(f"Fine-tuning started: {out}")
        self.finetune_started.emit(run)
        return run

    def cancel_finetune(self) -> None:
        if self.finetune_run is not None and self.finetune_run.running and self.finetune_panel is not None:
            self.finetune_panel._on_cancel()

    def _show_finetune_panel(self, run: Optional[FinetuneProcess] = None) -> FinetunePanel:
        """Create / show the Fine-tuning dock; with `run`, reset the panel to follow that run."""
        if self.finetune_panel is None:
            self.finetune_panel = FinetunePanel()
            self.finetune_panel.use_requested.connect(self.use_finetuned_weights)
            self.finetune_panel.keep_requested.connect(self.keep_current_weights)
            self.finetune_dock = QDockWidget("Fine-tuning", self)
            self.finetune_dock.setObjectName("finetune-dock")
            self.finetune_dock.setWidget(self.finetune_panel)
            self.addDockWidget(Qt.RightDockWidgetArea, self.finetune_dock)
            self.resizeDocks([self.finetune_dock], [420], Qt.Horizontal)  # leave the canvas most of the width
        if run is not None:
            self.finetune_panel.attach(run)
        if run is not None or not self.finetune_dock.isVisible():
            self.finetune_dock.show()
            # Lay out and paint the dock now, as the answer to the click on Start, rather than as a stall in
            # the first moments of the run.
            self.layout().activate()
            self.repaint()
        self.finetune_dock.raise_()
        return self.finetune_panel

    def use_finetuned_weights(self, path: str) -> bool:
        """The panel's "Use": a run's weights (with their report and provenance) are copied into
        PROJECT/finetune/<timestamp>/, the run's scratch folder goes, and the copy is loaded."""
        run = self.finetune_run
        if run is None or self.project is None or Path(path).resolve().parent != run.out_dir.resolve():
            return self.load_weights(path)
        try:
            kept = str(keep_result(run.out_dir, self.project.project_dir))
        except OSError as exc:
            if self.finetune_panel is not None:
                self.finetune_panel.weights_result(False, f"Could not copy the new weights into the project: {exc}")
            return False
        discard(run.out_dir)
        if self.finetune_panel is not None:
            self.finetune_panel.new_weights = kept
        return self.load_weights(kept)

    def keep_current_weights(self) -> None:
        """The panel's "Keep": the run's weights and its scratch folder go."""
        self.discard_finetune_run()
        self.status("Kept the current weights; the fine-tuned ones were discarded.")

    def discard_finetune_run(self) -> None:
        """Remove the last run's scratch folder, unless the run is still going."""
        run = self.finetune_run
        if run is not None and not run.running:
            discard(run.out_dir)

    def _on_finetune_finished(self, status: str, report: Optional[dict], message: str) -> None:
        if self.finetune_dock is not None:
            self.finetune_dock.show()  # the outcome (table, choice, error) is in the panel
        if status == "done":
            self.status("Fine-tuning finished: compare the weights in the Fine-tuning panel.")
        elif status == "cancelled":
            self.status("Fine-tuning cancelled.")
        else:
            first = message.strip().splitlines()[0] if message.strip() else ""
            if first and first[-1] not in ".!?:":
                first += "."  # the banner joins the lines: keep them sentences
            self.notify(f"Fine-tuning failed (your annotations are unchanged): {first}\n"
                        "Details are in the Fine-tuning panel.", error=True)
        self.finetune_finished.emit(status)
