"""Shared test setup: headless Qt, small thread counts so tests run beside a training job."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Converted nets (ONNX) are cached per test run, never in the user's home.
if "POINTER_ANNOTATOR_CACHE" not in os.environ:
    import tempfile

    os.environ["POINTER_ANNOTATOR_CACHE"] = tempfile.mkdtemp(prefix="pointer-annotator-test-cache-")

import torch  # noqa: E402

torch.set_num_threads(1)
