"""The fast inference path (ONNX Runtime) gives the masks of eager PyTorch, rebuilds a bad cache, and falls back."""
import logging
import sys

import numpy as np
import pytest

from model import Segmenter
from model import runtime

pytest.importorskip("onnxruntime")


def _image(h=120, w=160):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    img[30:90, 40:120] = (200, 40, 40)
    return img


@pytest.fixture(autouse=True)
def _runtimes_by_default(monkeypatch):
    """The other tests run eager PyTorch (conftest); here a Segmenter that names no runtime gets the product's
    default, "auto"."""
    monkeypatch.setenv(runtime.BACKEND_ENV, "auto")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POINTER_ANNOTATOR_CACHE", str(tmp_path))
    return tmp_path / "runtime"


@pytest.mark.parametrize("backend,name", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_fast_path_and_torch_give_the_same_masks(cache, backend, name):
    pytest.importorskip(name)
    fast = Segmenter.random_init(seed=1, backend=backend)
    ref = Segmenter.random_init(seed=1, backend="torch")
    assert fast.runtime == name and ref.runtime == "torch"
    img = _image()
    for clicks in ([(60, 50, True)], [(60, 50, True), (100, 70, False)], [(10, 10, True), (150, 110, True)]):
        a, b = fast.predict(img, clicks), ref.predict(img, clicks)
        assert np.array_equal(a.mask, b.mask)
        assert abs(a.score - b.score) < 1e-3
    # Whole-image segmentation runs other internal sizes (aspect ratios): the export has free height and width.
    assert np.array_equal(fast.segment_image(img, max_segments=5), ref.segment_image(img, max_segments=5))
    assert np.array_equal(fast.segment_image(img[:, :90], max_segments=3),
                          ref.segment_image(img[:, :90], max_segments=3))


def test_converted_net_is_cached_by_weights(cache):
    Segmenter.random_init(seed=2, backend="onnx")
    files = list(cache.glob("*.onnx"))
    assert len(files) == 1
    Segmenter.random_init(seed=2, backend="onnx")
    assert list(cache.glob("*.onnx")) == files          # the same weights reuse the file
    Segmenter.random_init(seed=3, backend="onnx")
    assert len(list(cache.glob("*.onnx"))) == 2         # other weights get their own


def test_corrupt_cache_file_is_rebuilt(cache, caplog):
    seg = Segmenter.random_init(seed=4, backend="onnx")
    (path,) = cache.glob("*.onnx")
    path.write_bytes(b"not an onnx model")
    with caplog.at_level(logging.WARNING, logger="model.runtime"):
        again = Segmenter.random_init(seed=4, backend="onnx")
    assert "rebuilding" in caplog.text
    assert path.stat().st_size > 100_000
    img = _image()
    assert np.array_equal(again.predict(img, [(60, 50, True)]).mask, seg.predict(img, [(60, 50, True)]).mask)


def test_stale_cache_file_is_not_trusted(cache, caplog):
    Segmenter.random_init(seed=5, backend="onnx")
    Segmenter.random_init(seed=6, backend="onnx")
    key5 = runtime.weights_sha256(Segmenter.random_init(seed=5, backend="torch").net)
    key6 = runtime.weights_sha256(Segmenter.random_init(seed=6, backend="torch").net)
    # The file under seed 5's key now holds seed 6's net: a valid model, but of other weights.
    (cache / f"{key5}.onnx").write_bytes((cache / f"{key6}.onnx").read_bytes())
    with caplog.at_level(logging.WARNING, logger="model.runtime"):
        fast = Segmenter.random_init(seed=5, backend="onnx")
    assert "disagrees" in caplog.text
    ref = Segmenter.random_init(seed=5, backend="torch")
    img = _image()
    assert np.array_equal(fast.predict(img, [(60, 50, True)]).mask, ref.predict(img, [(60, 50, True)]).mask)


def test_missing_runtimes_fall_back_to_torch_with_a_log_line(cache, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    monkeypatch.setitem(sys.modules, "openvino", None)
    with caplog.at_level(logging.WARNING, logger="model.runtime"):
        seg = Segmenter.random_init(seed=1)
    assert seg.runtime == "torch"
    assert "onnxruntime is not installed" in caplog.text and "openvino is not installed" in caplog.text
    assert seg.predict(_image(), [(60, 50, True)]).mask.shape == (120, 160)
    with pytest.raises(ImportError):
        Segmenter.random_init(seed=1, backend="onnx")


def test_missing_openvino_falls_back_to_onnxruntime(cache, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with caplog.at_level(logging.WARNING, logger="model.runtime"):
        seg = Segmenter.random_init(seed=1)
    assert seg.runtime == "onnxruntime" and "openvino is not installed" in caplog.text


def test_failing_runtimes_fall_back(cache, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated runtime failure")

    monkeypatch.setitem(runtime.RUNNERS, "onnx", broken)
    monkeypatch.setitem(runtime.RUNNERS, "openvino", broken)
    with caplog.at_level(logging.WARNING, logger="model.runtime"):
        seg = Segmenter.random_init(seed=1, backend="auto")
    assert seg.runtime == "torch" and "simulated runtime failure" in caplog.text


def test_loaded_weights_get_the_fast_path(cache, tmp_path):
    from model.net import PointerSegNet
    from model.weights import save_weights
    import torch

    torch.manual_seed(9)
    path = tmp_path / "w.safetensors"
    save_weights(PointerSegNet(pretrained_backbone=False), path)
    seg = Segmenter.random_init(seed=1, backend="auto")
    seg.load_weights(path)
    assert seg.runtime in ("openvino", "onnxruntime")
    assert (cache / f"{runtime.weights_sha256(seg.net)}.onnx").is_file()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        Segmenter.random_init(seed=1, backend="tensorrt")


def test_the_environment_chooses_the_runtime_where_none_is_named(cache, monkeypatch):
    """$POINTER_ANNOTATOR_BACKEND: a person whose machine has a misbehaving runtime picks another without code."""
    monkeypatch.setenv(runtime.BACKEND_ENV, "onnx")
    assert Segmenter.random_init(seed=1).runtime == "onnxruntime"
    assert Segmenter.random_init(seed=1, backend="torch").runtime == "torch"  # a named one wins
    monkeypatch.setenv(runtime.BACKEND_ENV, "")
    assert Segmenter.random_init(seed=1).backend == "auto"
    monkeypatch.setenv(runtime.BACKEND_ENV, "tensorrt")
    with pytest.raises(ValueError, match="POINTER_ANNOTATOR_BACKEND='tensorrt'"):
        Segmenter.random_init(seed=1)


_RUNNERS_THEN_A_SIGNAL = r"""
import gc, os, signal, sys
sys.path.insert(0, sys.argv[1])
from model.net import PointerSegNet
from model.runtime import make_runner

def runner():
    return make_runner(PointerSegNet(pretrained_backbone=False).eval(), "cpu", "openvino")

# What swapping weights twice does: each new runner is made while the one before it still exists.
a = runner(); b = runner(); del a; gc.collect()
c = runner(); del b; gc.collect(); del c; gc.collect()
signal.signal(signal.SIGUSR1, lambda *_: print("handled", flush=True))
os.kill(os.getpid(), signal.SIGUSR1)  # as Ctrl+C or a child process ending reach a Python handler
print("alive", flush=True)
"""


def test_a_signal_after_openvino_runners_come_and_go_is_handled_not_a_crash(tmp_path):
    """OpenVINO's CPU plugin points the thread's signal stack at its own buffer and restores its own idea of the
    previous one when destroyed; with a plugin per runner, runners dropped out of order left the signal stack on
    freed memory and the next signal killed the process (SIGSEGV, exit -11)."""
    pytest.importorskip("openvino")
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, POINTER_ANNOTATOR_CACHE=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", _RUNNERS_THEN_A_SIGNAL, str(root)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.split() == ["handled", "alive"]
