"""Reading weight files (bare or wrapped state dicts) and choosing between optional checkpoints."""

import logging

import pytest
import torch

from common.networks import available_checkpoints, load_pretrained, read_state_dict


@pytest.mark.parametrize("key", [None, "model", "state_dict", "model_state_dict", "network"])
def test_a_state_dict_loads_bare_or_in_a_checkpoint_dict(tmp_path, key):
    torch.manual_seed(0)
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    state = source.state_dict() if key is None else {key: source.state_dict(), "optimizer": {}, "epoch": 3}
    torch.save(state, tmp_path / "model.pt")
    assert load_pretrained(target, str(tmp_path / "model.pt")) is target
    torch.testing.assert_close(target.weight, source.weight)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt: weights file not found"):
        load_pretrained(torch.nn.Linear(1, 1), str(tmp_path / "model.pt"))
    torch.save({"model": [1, 2]}, tmp_path / "list.pt")
    with pytest.raises(ValueError, match="list.pt: expected a state dict"):
        read_state_dict(tmp_path / "list.pt")
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "wider.pt")
    with pytest.raises(ValueError, match="wider.pt: does not load into Linear.*another model size"):
        load_pretrained(torch.nn.Linear(1, 1), tmp_path / "wider.pt")
    torch.save(torch.nn.Conv2d(1, 1, 1, bias=False).state_dict(), tmp_path / "other.pt")
    with pytest.raises(KeyError, match="other.pt: does not load into Linear.*missing \\['bias'\\]"):
        load_pretrained(torch.nn.Linear(1, 1), tmp_path / "other.pt")


def test_available_checkpoints_warns_about_missing_files_and_fails_without_any(tmp_path, caplog):
    (tmp_path / "model.pt").touch()
    paths = {"base": str(tmp_path / "model.pt"), "actin": str(tmp_path / "model_actin.pt")}
    with caplog.at_level(logging.WARNING):
        assert available_checkpoints(paths, uses={"actin": "fine-tuned for actin"}) == ["base"]
    assert "model_actin.pt not found (fine-tuned for actin)" in caplog.text
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        available_checkpoints({"actin": str(tmp_path / "model_actin.pt")})
