"""Shared test setup: headless Qt, small thread counts so tests run beside a training job."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402

torch.set_num_threads(1)
