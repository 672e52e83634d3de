"""ResumableEarlyStopHandler in a ResumableCheckpoint: a run killed while early stopping counts, then resumed,
stops at the epoch and with the weights of an uninterrupted run."""

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.transforms import Compose, RandFlipd

from common.handlers import ModelSaver, ResumableCheckpoint, ResumableEarlyStopHandler
from tests.support.engines import mse_engines

PATIENCE = 3


def _data(n, seed, inverted=False):
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        image = rng.random((1, 8, 8), dtype=np.float32)
        label = (image > 0.5).astype(np.float32)
        items.append({"image": image, "label": 1 - label if inverted else label})
    return items


def _run(root, epochs, resume=False, early_stop_in_checkpoint=True):
    """A fresh training process: validation targets are the training targets inverted, so the validation MSE
    stops improving after the first epochs and early stopping ends the run."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1))
    optimizer = torch.optim.Adam(network.parameters(), 1e-2)
    train_loader = DataLoader(
        CacheDataset(_data(4, 0), RandFlipd(["image", "label"], prob=0.5), progress=False), batch_size=2, shuffle=True
    )
    val_loader = DataLoader(CacheDataset(_data(2, 1, inverted=True), Compose([]), progress=False), batch_size=2)
    early_stop = ResumableEarlyStopHandler(PATIENCE, lambda engine: -engine.state.metrics["val_mse"])
    trainer, evaluator = mse_engines(network, optimizer, train_loader, val_loader, epochs, val_handlers=[early_stop])
    scores = []
    evaluator.add_event_handler(Events.COMPLETED, lambda engine: scores.append(engine.state.metrics["val_mse"]))
    early_stop.set_trainer(trainer)
    save_dict = {"model": network, "optimizer": optimizer, "trainer": trainer}
    if early_stop_in_checkpoint:
        save_dict["early_stop"] = early_stop
    ResumableCheckpoint(root, save_dict, validator=evaluator, seed=3, resume=resume).attach(trainer)
    ModelSaver(root, network, "model.pt", "last", resume=resume).attach(trainer)
    trainer.run()
    return trainer, network, early_stop, scores


def _same(first, second):
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_resumed_run_stops_where_the_uninterrupted_run_stops(tmp_path):
    whole, whole_network, whole_stop, scores = _run(tmp_path / "whole", 20)
    stopped_at = whole.state.epoch
    assert stopped_at < 20 and whole_stop._handler.counter == PATIENCE, scores  # early stopping ended it
    _, _, partial_stop, _ = _run(tmp_path / "split", stopped_at - 1)  # killed one epoch before the stop
    assert 0 < partial_stop._handler.counter < PATIENCE
    resumed, resumed_network, resumed_stop, _ = _run(tmp_path / "split", 20, resume=True)
    assert resumed.state.epoch == stopped_at
    assert resumed_stop.state_dict() == whole_stop.state_dict()
    assert _same(whole_network, resumed_network)
    last = torch.load(tmp_path / "split" / "model.pt")
    assert all(torch.equal(last[k], v) for k, v in whole_network.state_dict().items())


def test_without_the_early_stopping_state_a_resumed_run_trains_on(tmp_path):
    """What the checkpoint entry prevents: the counter restarts at 0 and the run goes past the stop."""
    whole, *_ = _run(tmp_path / "whole", 20, early_stop_in_checkpoint=False)
    _run(tmp_path / "split", whole.state.epoch - 1, early_stop_in_checkpoint=False)
    resumed, *_ = _run(tmp_path / "split", 20, resume=True, early_stop_in_checkpoint=False)
    assert resumed.state.epoch > whole.state.epoch


def test_resuming_a_run_early_stopping_ended_trains_no_further_epoch(tmp_path):
    whole, network, _, _ = _run(tmp_path, 20)
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    again, again_network, _, scores = _run(tmp_path, 20, resume=True)
    assert again.state.epoch == whole.state.epoch and scores == []
    assert _same(network, again_network)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == files


def test_state_before_set_trainer_is_an_error():
    with pytest.raises(RuntimeError, match="set_trainer"):
        ResumableEarlyStopHandler(2, lambda engine: 0.0).state_dict()
