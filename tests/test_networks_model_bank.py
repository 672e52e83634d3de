"""MagnificationModels: one network per (magnification, channel) behind forward(image, magnification)."""

import logging

import pytest
import torch
from torch import nn

from common.networks import MagnificationModels


class Scale(nn.Module):
    """(B, 1, H, W) -> (B, 1, H, W) times a learnable factor: a network whose output says which one it is."""

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(float(factor)))

    def forward(self, x):
        return x * self.factor


def test_channels_come_out_in_channel_order_for_the_batch_magnification():
    bank = MagnificationModels({40: {3: Scale(3.0), 1: Scale(1.0)}, 20: {2: Scale(2.0)}})
    assert bank.channels == {20: [2], 40: [1, 3]}
    image = torch.rand(2, 1, 4, 5)
    torch.testing.assert_close(bank(image, torch.tensor([40, 40])), torch.cat([image, 3 * image], dim=1))
    torch.testing.assert_close(bank(image, 20), 2 * image)
    with pytest.raises(ValueError, match=r"one value for the whole batch, got \[20, 40\]"):
        bank(image, torch.tensor([20, 40]))
    with pytest.raises(ValueError, match=r"no network for 60x; networks exist for \[20, 40\]"):
        bank(image, 60)


def test_from_checkpoints_loads_what_exists_and_names_what_is_missing(tmp_path, caplog):
    torch.save(Scale(5.0).state_dict(), tmp_path / "model_20x_c01.pt")
    torch.save({"model": Scale(7.0).state_dict()}, tmp_path / "model_20x_c03.pt")  # CheckpointSaver's layout
    with caplog.at_level(logging.INFO, logger="common.networks.model_bank"):
        bank = MagnificationModels.from_checkpoints(Scale(), tmp_path, magnifications=(20, 60))
    assert bank.channels == {20: [1, 3]}
    torch.testing.assert_close(bank(torch.ones(1, 1, 2, 2), 20)[0, :, 0, 0], torch.tensor([5.0, 7.0]))
    assert "20x: no model_20x_c02.pt" in caplog.text and "those channels are not predicted" in caplog.text
    assert "60x: no model_60x_c01.pt, model_60x_c02.pt, model_60x_c03.pt" in caplog.text
    assert "60x images are skipped" in caplog.text


def test_from_checkpoints_without_any_model_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no trained model found .*model_20x_c01.pt"):
        MagnificationModels.from_checkpoints(Scale(), tmp_path)
    torch.save([1, 2], tmp_path / "model_20x_c01.pt")
    with pytest.raises(ValueError, match="model_20x_c01.pt: expected a state dict"):
        MagnificationModels.from_checkpoints(Scale(), tmp_path)
