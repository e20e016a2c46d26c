"""`python -m train average`: the uniform average of snapshots, from weights files and trainer checkpoints."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.net import PointerSegNet
from model.weights import load_weights, save_weights
from train.__main__ import main as train_main
from train.average import average_states


def _net(seed: int) -> PointerSegNet:
    torch.manual_seed(seed)
    return PointerSegNet(pretrained_backbone=False)


def test_average_of_a_weights_file_and_a_checkpoint_is_their_mean(tmp_path: Path) -> None:
    a, b = _net(0), _net(1)
    save_weights(a, tmp_path / "a.safetensors")
    torch.save({"net": b.state_dict(), "opt": {}, "step": 250}, tmp_path / "b.pt")
    out = tmp_path / "avg.safetensors"
    assert train_main(["average", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pt"), "--out", str(out)]) == 0
    state, info = load_weights(out)
    assert len(info["averaged_from"]) == 2
    sa, sb = a.state_dict(), b.state_dict()
    checked = 0
    for name, t in state.items():
        if t.is_floating_point():
            assert torch.allclose(t, (sa[name] + sb[name]) / 2, atol=1e-6), name
            checked += 1
        else:
            assert torch.equal(t, sa[name]), name
    assert checked > 10


def test_average_of_one_net_is_that_net() -> None:
    s = _net(3).state_dict()
    avg = average_states([s, s, s])
    assert all(torch.allclose(avg[k].float(), s[k].float()) for k in s)


def test_mismatched_or_broken_inputs_get_a_clear_error(tmp_path: Path, capsys) -> None:
    s = _net(0).state_dict()
    t = dict(s)
    name = next(k for k, v in s.items() if v.is_floating_point())
    t[name] = torch.zeros(3)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        average_states([s, t])
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    save_weights(_net(0), tmp_path / "a.safetensors")
    out = tmp_path / "avg.safetensors"
    assert train_main(["average", str(tmp_path / "a.safetensors"), str(bad), "--out", str(out)]) == 2
    assert "broken.pt" in capsys.readouterr().err
    assert not out.exists()
