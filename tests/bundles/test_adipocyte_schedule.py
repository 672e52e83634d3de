"""The learning-rate schedule of the adipocyte bundle's train.json is the Bug Hunters' Keras scheduler."""

import math

import pytest
from monai.bundle import ConfigParser

from tests.support.bundles import REPO

BUNDLE = REPO / "bundles" / "adipocyte_fluorescence_prediction"


def keras_scheduler(epoch: int, lr: float) -> float:
    """The team's ``scheduler(epoch, lr)``: unchanged for 10 epochs, then times exp(-0.1) at the start of each epoch."""
    return lr if epoch < 10 else lr * math.exp(-0.1)


def test_learning_rate_per_epoch_follows_the_original_scheduler():
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser["network"] = "$torch.nn.Linear(1, 1)"  # the schedule does not depend on the network
    optimizer = parser.get_parsed_content("optimizer")
    scheduler = parser.get_parsed_content("lr_scheduler")
    assert optimizer.defaults["betas"] == (0.5, 0.999)
    lr = optimizer.defaults["lr"]
    for epoch in range(40):
        lr = keras_scheduler(epoch, lr)  # Keras sets the rate when an epoch begins
        assert optimizer.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12), epoch
        optimizer.step()
        scheduler.step()  # MONAI's LrScheduleHandler steps when an epoch completes
    assert lr == pytest.approx(1e-4 * math.exp(-3.0))
