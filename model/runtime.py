"""Ways to run the (fused) net for inference, chosen by measurement (bench/bench_segmenter.py --runtimes).

Every runner is a callable `runner(image, pointer, roi) -> (logits, score_logit)` on float32 numpy arrays of
shape 1x3xHxW, 1x3xHxW, 1x1xHxW (H, W multiples of 32), returning 1x1xHxW and 1 float32 numpy arrays.

- `TorchRunner`: eager PyTorch, the reference and the fallback.
- `OnnxRunner`: ONNX Runtime's CPU execution provider with all graph optimisations.
- `OpenVinoRunner`: OpenVINO's CPU plugin on the same ONNX file, in float32 (its default on CPUs with bf16
  units is bf16, which changes the masks).
The net is exported to ONNX once per weights (cached on disk under the SHA-256 of its tensors), and every runner
built from a cached file is checked against eager PyTorch on a fixed input: a stale or corrupt cache file is
rebuilt, never trusted.

`make_runner(net, "auto")` gives the fastest runtime that is installed and passes the check (OpenVINO, then ONNX
Runtime, measured by `bench/bench_segmenter.py --runtimes`), else eager PyTorch, with a log line saying why.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

INPUT_NAMES = ("image", "pointer", "roi")
# The check of a cached export: logits of eager PyTorch and the runtime on a fixed input agree to this much.
CHECK_TOLERANCE = 1e-2
CHECK_SHAPE = (96, 128)


def cache_dir() -> Path:
    """Where converted nets are cached: $POINTER_ANNOTATOR_CACHE, else ~/.cache/pointer-annotator."""
    root = os.environ.get("POINTER_ANNOTATOR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                        "pointer-annotator")
    return Path(root) / "runtime"


def weights_sha256(net: nn.Module) -> str:
    """SHA-256 of the net's tensors (names, shapes, bytes): the same weights give the same key however they
    were loaded (bundled, fine-tuned, in memory)."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        t = t.detach().cpu()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        # Via numpy: a channels-last tensor's bytes are hashed in logical order, like any other.
        h.update(np.ascontiguousarray(t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()).tobytes())
    return h.hexdigest()


class _StaticSamePadConv(nn.Conv2d):
    """TF-"same" convolution with the padding fixed for inputs whose side is a multiple of 32.

    EfficientNet-Lite's convolutions compute their padding from the input size at every call; an exported graph
    would freeze the padding of the export's size. For every size the Segmenter feeds (multiples of 32), the
    padding is the same: (k - s) in all, the smaller half before, so it can be a constant."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
                         conv.groups, conv.bias is not None)
        self.load_state_dict(conv.state_dict())
        pads = []
        for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation):
            total = max((k - 1) * d + 1 - s, 0)
            pads.append((total // 2, total - total // 2))
        (ph0, ph1), (pw0, pw1) = pads
        self.pads = [pw0, pw1, ph0, ph1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def static_padding(net: nn.Module) -> nn.Module:
    """A copy of `net` with every dynamic-"same" convolution replaced by its fixed-padding twin."""
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv2dDynamicSamePadding):
                setattr(parent, name, _StaticSamePadConv(child))
    return net.eval()


def _check_inputs(h: int = CHECK_SHAPE[0], w: int = CHECK_SHAPE[1]) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (1, 3, h, w)).astype(np.float32)
    pointer = np.zeros((1, 3, h, w), np.float32)
    pointer[0, 0, h // 2 - 5:h // 2 + 5, w // 2 - 5:w // 2 + 5] = 1
    roi = np.ones((1, 1, h, w), np.float32)
    return image, pointer, roi


class TorchRunner:
    """Eager PyTorch on `device`."""

    name = "torch"

    def __init__(self, net: nn.Module, device: str = "cpu"):
        self.net, self.device = net.eval(), device

    def __call__(self, image: np.ndarray, pointer: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, score = self.net(*(torch.from_numpy(a).to(self.device) for a in (image, pointer, roi)))
            return logits.float().cpu().numpy(), score.float().cpu().numpy()


def export_onnx(net: nn.Module, path: str | Path) -> None:
    """Export the (fused) net to ONNX with free height and width (multiples of 32), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    static = static_padding(net).cpu()
    example = tuple(torch.from_numpy(a) for a in _check_inputs())
    axes = {k: {2: "height", 3: "width"} for k in INPUT_NAMES}
    axes["logits"] = {2: "height", 3: "width"}
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(static, example, tmp, input_names=list(INPUT_NAMES),
                              output_names=["logits", "score"], dynamic_axes=axes, opset_version=17, dynamo=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class OnnxRunner:
    """ONNX Runtime (CPU execution provider, all graph optimisations) on an exported net."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads if threads is not None else max(1, torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, image: np.ndarray, pointer: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, score = self.session.run(None, dict(zip(INPUT_NAMES, (image, pointer, roi))))
        return logits, score


_OPENVINO_CORE = None
_OPENVINO_CORE_LOCK = threading.Lock()


def openvino_core():
    """The process's one `openvino.Core`, made on first use and kept until exit. Its CPU plugin points the calling
    thread's signal stack (sigaltstack) at a buffer of its own and, when destroyed, points it back at what it saw
    when it was made: with one Core per runner, a runner made while another existed and dropped after it left the
    thread's signal stack on freed memory, and the next Python signal handler run on that thread (Ctrl+C, a
    child process ending) crashed the process with SIGSEGV. One plugin that lives as long as the process never
    does that, and no runner pays for loading the plugin again."""
    global _OPENVINO_CORE
    with _OPENVINO_CORE_LOCK:
        if _OPENVINO_CORE is None:
            import openvino as ov

            _OPENVINO_CORE = ov.Core()
        return _OPENVINO_CORE


class OpenVinoRunner:
    """OpenVINO (CPU plugin, float32, latency hint) on an exported ONNX file."""

    name = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None):
        core = openvino_core()
        self.path = Path(path)
        config = {"INFERENCE_NUM_THREADS": threads if threads is not None else max(1, torch.get_num_threads()),
                  "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)

    def __call__(self, image: np.ndarray, pointer: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.compiled([image, pointer, roi])
        return np.asarray(out[0]), np.asarray(out[1])


RUNNERS = {"onnx": OnnxRunner, "openvino": OpenVinoRunner}


def agrees_with(net: nn.Module, runner) -> bool:
    """Does `runner` give eager PyTorch's logits on a fixed input (two sizes, so free shapes really work)?"""
    for shape in (CHECK_SHAPE, (64, 96)):
        inputs = _check_inputs(*shape)
        ref, _ = TorchRunner(net, "cpu")(*inputs)
        try:
            got, _ = runner(*inputs)
        except Exception:  # noqa: BLE001 - any failure of the runtime means "do not trust it"
            return False
        if got.shape != ref.shape or not np.isfinite(got).all() or np.abs(got - ref).max() > CHECK_TOLERANCE:
            return False
    return True


def exported_runner(net: nn.Module, kind: str = "onnx", threads: int | None = None, cache: Path | None = None):
    """A runner of `kind` ("onnx" or "openvino") for `net` on its ONNX export, taken from the disk cache when a
    file for these weights is there and reproduces them; otherwise (re)exported, checked, and refused with a
    RuntimeError if it still disagrees. ImportError when the runtime is not installed."""
    make = RUNNERS[kind]
    label = "onnxruntime" if kind == "onnx" else kind
    __import__(label)  # a missing runtime is an ImportError before any export work
    path = (cache or cache_dir()) / f"{weights_sha256(net)}.onnx"
    if path.is_file():
        try:
            runner = make(path, threads)
            if agrees_with(net, runner):
                return runner
            log.warning("cached ONNX model %s disagrees with the weights; rebuilding it", path)
        except Exception as exc:  # noqa: BLE001 - a corrupt cache file is rebuilt
            log.warning("cached ONNX model %s is unreadable (%s); rebuilding it", path, exc)
    export_onnx(net, path)
    runner = make(path, threads)
    if not agrees_with(net, runner):
        raise RuntimeError(f"{label} on the ONNX export {path} does not reproduce the PyTorch net")
    return runner


def onnx_runner(net: nn.Module, threads: int | None = None, cache: Path | None = None) -> OnnxRunner:
    return exported_runner(net, "onnx", threads, cache)


BACKENDS = ("auto", "openvino", "onnx", "torch")
AUTO_ORDER = ("openvino", "onnx")  # fastest first, as measured by bench/bench_segmenter.py --runtimes
# Chooses the runtime wherever none is named (the annotator, main.py, train.evaluate): e.g. "torch" on a machine
# where a runtime misbehaves. The tests set it to "torch" (tests/conftest.py).
BACKEND_ENV = "POINTER_ANNOTATOR_BACKEND"


def default_backend() -> str:
    """$POINTER_ANNOTATOR_BACKEND if set, else "auto"; a value that is not a backend is a ValueError naming it."""
    value = os.environ.get(BACKEND_ENV, "").strip() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"${BACKEND_ENV}={value!r} is not an inference backend ({', '.join(BACKENDS)})")
    return value


def make_runner(net: nn.Module, device: str = "cpu", backend: str = "auto", threads: int | None = None):
    """The runner for `backend`: "torch", "onnx", "openvino", or "auto" (on the CPU, the first of AUTO_ORDER that
    is installed and reproduces the net, else eager PyTorch; a log line says why a runtime was passed over).
    A named backend that cannot run raises."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown inference backend {backend!r} ({', '.join(BACKENDS)})")
    if backend == "torch" or (backend == "auto" and device != "cpu"):
        return TorchRunner(net, device)
    if backend != "auto":
        return exported_runner(net, backend, threads)
    for kind in AUTO_ORDER:
        label = "onnxruntime" if kind == "onnx" else kind
        try:
            return exported_runner(net, kind, threads)
        except ImportError as exc:
            log.warning("%s is not installed (%s); trying the next runtime", label, exc)
        except Exception as exc:  # noqa: BLE001 - the fast path is an optimisation: fall back, never crash
            log.warning("%s could not run the net (%s); trying the next runtime", label, exc)
    log.warning("no inference runtime could run the net; running it in PyTorch")
    return TorchRunner(net, device)
