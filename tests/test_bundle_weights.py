"""Starting weights and optional checkpoints of a bundle."""

import logging

import pytest
import torch

from common.bundle import available_checkpoints, load_weights


@pytest.mark.parametrize("wrapped", [False, True])
def test_load_weights_reads_a_state_dict_or_a_checkpoint_dict(tmp_path, wrapped):
    torch.manual_seed(0)
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    state = {"model": source.state_dict(), "optimizer": {}} if wrapped else source.state_dict()
    torch.save(state, tmp_path / "model.pt")
    assert load_weights(target, str(tmp_path / "model.pt")) is target
    torch.testing.assert_close(target.weight, source.weight)


def test_load_weights_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt: checkpoint to start from not found"):
        load_weights(torch.nn.Linear(1, 1), str(tmp_path / "model.pt"))


def test_available_checkpoints_warns_about_missing_files_and_fails_without_any(tmp_path, caplog):
    (tmp_path / "model.pt").touch()
    paths = {"base": str(tmp_path / "model.pt"), "actin": str(tmp_path / "model_actin.pt")}
    with caplog.at_level(logging.WARNING):
        assert available_checkpoints(paths, uses={"actin": "fine-tuned for actin"}) == ["base"]
    assert "model_actin.pt not found (fine-tuned for actin)" in caplog.text
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        available_checkpoints({"actin": str(tmp_path / "model_actin.pt")})
