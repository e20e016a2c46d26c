"""Weight files (model.weights): safetensors round trip with metadata, atomic writes, clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import WeightsError
from model.net import ARCH_NAME, PointerSegNet
from model.weights import load_into, load_weights, save_weights


@pytest.fixture()
def nets() -> tuple[PointerSegNet, PointerSegNet]:
    torch.manual_seed(0)
    a = PointerSegNet(pretrained_backbone=False)
    torch.manual_seed(1)
    b = PointerSegNet(pretrained_backbone=False)
    return a, b


def test_round_trip_restores_every_tensor_and_metadata(tmp_path: Path, nets) -> None:
    a, b = nets
    path = tmp_path / "sub" / "w.safetensors"  # missing folders are created
    save_weights(a, path, {"steps": 12, "sources": ["synthetic:8"]})
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    state, info = load_weights(path)
    assert info == {"steps": 12, "sources": ["synthetic:8"]}
    assert set(state) == set(a.state_dict())
    info2 = load_into(b, path)
    assert info2 == info
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v), k


def test_file_is_not_a_pickle(tmp_path: Path, nets) -> None:
    from safetensors import safe_open

    path = tmp_path / "w.safetensors"
    save_weights(nets[0], path)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["arch"] == ARCH_NAME
    assert not path.read_bytes().startswith(b"\x80")  # pickle protocol marker
    assert load_weights(path)[1] == {}


def test_overwrite_keeps_a_valid_file(tmp_path: Path, nets) -> None:
    a, b = nets
    path = tmp_path / "w.safetensors"
    save_weights(a, path)
    save_weights(b, path, {"v": 2})
    state, info = load_weights(path)
    assert info == {"v": 2}
    k = "head.weight"
    assert torch.equal(state[k], b.state_dict()[k]) and not torch.equal(state[k], a.state_dict()[k])


def test_errors_name_the_file(tmp_path: Path, nets) -> None:
    good = tmp_path / "good.safetensors"
    save_weights(nets[0], good)
    bad = tmp_path / "half.safetensors"
    bad.write_bytes(good.read_bytes()[:1000])
    for path, words in [(tmp_path / "none.safetensors", "not found"), (bad, "corrupt or truncated")]:
        with pytest.raises(WeightsError, match=words) as exc:
            load_into(nets[1], path)
        assert str(path) in str(exc.value)
    small = tmp_path / "small.safetensors"
    save_weights(PointerSegNet(pretrained_backbone=False, decoder_channels=16), small)
    with pytest.raises(WeightsError, match="wrong shape") as exc:
        load_into(nets[1], small)
    assert str(small) in str(exc.value)
