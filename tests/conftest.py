"""Shared test setup: headless Qt, small thread counts so tests run beside a training job."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Converted nets (ONNX) are cached per test run, never in the user's home.
if "POINTER_ANNOTATOR_CACHE" not in os.environ:
    import tempfile

    os.environ["POINTER_ANNOTATOR_CACHE"] = tempfile.mkdtemp(prefix="pointer-annotator-test-cache-")

# Segmenters the tests make without naming a runtime run eager PyTorch: no ONNX export and compile per net (a
# third less time in the Segmenter, evaluation and fine-tune tests). tests/test_runtime.py names its runtimes and
# checks that OpenVINO and ONNX Runtime give PyTorch's masks, and that "auto" picks them.
os.environ.setdefault("POINTER_ANNOTATOR_BACKEND", "torch")

import torch  # noqa: E402

torch.set_num_threads(1)


# pytest-qt holds the widgets it will close at teardown by weak reference only, so a window whose test has
# returned can be garbage-collected (its inference thread still running) before pytest-qt closes it; under
# pytest 9.2 the collector ran in that gap and Qt aborted the run. Windows stay referenced until closed.
import pytest  # noqa: E402
from pytestqt.qtbot import QtBot  # noqa: E402

_widgets_until_closed: list = []
_add_widget = QtBot.addWidget


def _add_widget_kept_alive(self, widget, *, before_close_func=None) -> None:
    _widgets_until_closed.append(widget)
    _add_widget(self, widget, before_close_func=before_close_func)


QtBot.addWidget = _add_widget_kept_alive


@pytest.fixture(autouse=True)
def _release_closed_widgets():
    """Finalised after pytest-qt has closed the test's widgets (its teardown hook runs first)."""
    yield
    _widgets_until_closed.clear()
