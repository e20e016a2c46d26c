"""The candidate ways to run the same fused weights, for `bench_segmenter.py --runtimes`.

Each builder takes the fused net (model.Segmenter.net) and returns a runner as in model/runtime.py, or raises
(ImportError when its package is missing). Only the winner of the measurement, ONNX Runtime, is in model/; the
rest stay here so the choice can be re-measured on other machines.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from model import runtime


class _TorchModuleRunner(runtime.TorchRunner):
    def __init__(self, module, name: str, channels_last: bool = False):
        super().__init__(module, "cpu")
        self.name, self.channels_last = name, channels_last

    def __call__(self, image, pointer, roi):
        with torch.inference_mode():
            args = [torch.from_numpy(a) for a in (image, pointer, roi)]
            if self.channels_last:
                args = [a.contiguous(memory_format=torch.channels_last) for a in args]
            logits, score = self.net(*args)
            return logits.float().contiguous().numpy(), score.float().numpy()


def torch_eager(net):
    return runtime.TorchRunner(net, "cpu")


def torch_channels_last(net):
    import copy

    return _TorchModuleRunner(copy.deepcopy(net).to(memory_format=torch.channels_last), "torch-channels-last",
                              channels_last=True)


def torchscript_frozen(net):
    """torch.jit.trace of the fixed-padding net, frozen and optimize_for_inference'd."""
    static = runtime.static_padding(net)
    example = tuple(torch.from_numpy(a) for a in runtime._check_inputs())
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(static, example, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return _TorchModuleRunner(frozen, "torchscript-frozen")


def onnxruntime_fp32(net):
    return runtime.onnx_runner(net)


def onnxruntime_int8_dynamic(net):
    """ONNX Runtime with weights quantised to int8 (dynamic quantisation of Conv / MatMul)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = runtime.onnx_runner(net).path
    out = Path(tempfile.mkdtemp()) / "int8.onnx"
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QUInt8)
    r = runtime.OnnxRunner(out)
    r.name = "onnxruntime-int8-dynamic"
    return r


class _OpenVinoDefaultPrecision(runtime.OpenVinoRunner):
    """OpenVINO with the CPU plugin's default precision (bf16 on CPUs that have bf16 units)."""

    name = "openvino-default-precision"

    def __init__(self, path, threads):
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})


def openvino_f32(net):
    return runtime.exported_runner(net, "openvino")


def openvino_default_precision(net):
    return _OpenVinoDefaultPrecision(runtime.onnx_runner(net).path, max(1, torch.get_num_threads()))


CANDIDATES = {
    "torch": torch_eager,
    "torch-channels-last": torch_channels_last,
    "torchscript-frozen": torchscript_frozen,
    "onnxruntime": onnxruntime_fp32,
    "onnxruntime-int8-dynamic": onnxruntime_int8_dynamic,
    "openvino": openvino_f32,
    "openvino-default-precision": openvino_default_precision,
}
