"""ResumableCheckpoint and BestModelSaver on a small MONAI trainer: kills, resumes, refusals, broken files."""

import logging

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader
from monai.transforms import Compose, RandFlipd, RandGaussianNoised, RandSpatialCropd

from common.handlers import ModelSaver, ResumableCheckpoint, StopOnNonFiniteLoss
from tests.support.engines import mse_engines


def _data(n, seed, nan_at=None):
    rng = np.random.default_rng(seed)
    items = []
    for index in range(n):
        image = rng.random((1, 16, 16), dtype=np.float32)
        if index == nan_at:
            image[0, 3, 3] = np.nan
        items.append({"image": image, "label": (image > 0.5).astype(np.float32)})
    return items


def _run(tmp_path, epochs, resume=False, overwrite=False, nan_at=None, num_workers=0, keep="best"):
    """Build the whole training run anew (as a new process would) and run it for ``epochs`` in all."""
    torch.manual_seed(1234)  # the network's initial weights; a resumed run replaces them from the checkpoint
    network = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Dropout2d(0.2),
        torch.nn.Conv2d(4, 1, 3, padding=1),
    )
    optimizer = torch.optim.Adam(network.parameters(), 1e-2)
    augment = Compose(
        [
            RandSpatialCropd(["image", "label"], (12, 12), random_size=False),
            RandFlipd(["image", "label"], prob=0.5, spatial_axis=0),
            RandGaussianNoised("image", prob=0.5, std=0.1),
        ]
    )
    train_loader = DataLoader(
        CacheDataset(_data(6, 0, nan_at), augment, progress=False), batch_size=2, shuffle=True, num_workers=num_workers
    )
    val_loader = DataLoader(CacheDataset(_data(2, 1), Compose([]), progress=False), batch_size=1)
    trainer, evaluator = mse_engines(
        network,
        optimizer,
        train_loader,
        val_loader,
        epochs,
        metric_cmp_fn=lambda current, best: current < best if best != -1 else True,
    )
    StopOnNonFiniteLoss().attach(trainer)
    checkpoint = ResumableCheckpoint(
        tmp_path,
        {"model": network, "optimizer": optimizer, "trainer": trainer},
        validator=evaluator,
        seed=7,
        resume=resume,
        overwrite=overwrite,
    )
    checkpoint.attach(trainer)
    ModelSaver(tmp_path, network, "model.pt", keep, evaluator, resume=resume, overwrite=overwrite).attach(trainer)
    trainer.run()
    return network, evaluator


def _same(first, second):
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, num_workers):
    whole, whole_eval = _run(tmp_path / "whole", 4, num_workers=num_workers)
    _run(tmp_path / "split", 2, num_workers=num_workers)
    resumed, resumed_eval = _run(tmp_path / "split", 4, resume=True, num_workers=num_workers)
    assert _same(whole, resumed)
    assert (whole_eval.state.best_metric, whole_eval.state.best_metric_epoch) == (
        resumed_eval.state.best_metric,
        resumed_eval.state.best_metric_epoch,
    )
    best_whole = torch.load(tmp_path / "whole" / "model.pt")
    best_resumed = torch.load(tmp_path / "split" / "model.pt")
    assert all(torch.equal(best_whole[k], best_resumed[k]) for k in best_whole)
    assert [p.name for p in (tmp_path / "split").glob("checkpoint*")] == ["checkpoint_epoch=4.pt"]
    assert not list((tmp_path / "split").glob(".*"))


def test_resume_keeps_the_better_model(tmp_path):
    """The first validation after a resume must not replace model.pt unless it beats the restored best."""
    _run(tmp_path, 2)
    before = (tmp_path / "model.pt").read_bytes()
    checkpoint = torch.load(tmp_path / "checkpoint_epoch=2.pt", weights_only=False)
    checkpoint["validator"]["best_metric"] = 0.0  # a best that no later epoch can beat
    torch.save(checkpoint, tmp_path / "checkpoint_epoch=2.pt")
    _run(tmp_path, 3, resume=True)
    assert (tmp_path / "model.pt").read_bytes() == before


def test_broken_newest_checkpoint_is_skipped_and_named(tmp_path, caplog):
    _run(tmp_path / "whole", 3)
    run = tmp_path / "split"
    _run(run, 1)
    keep = (run / "checkpoint_epoch=1.pt").read_bytes()
    _run(run, 2, resume=True)
    (run / "checkpoint_epoch=1.pt").write_bytes(keep)  # as if the kill came before the old one was deleted
    (run / "checkpoint_epoch=2.pt").write_bytes(b"")  # and the new one were left empty
    (run / ".checkpoint_epoch=3.pt.partial").write_bytes(b"half")
    with caplog.at_level(logging.WARNING):
        resumed, _ = _run(run, 3, resume=True)
    assert "checkpoint_epoch=2.pt: cannot resume from it" in caplog.text
    assert not (run / ".checkpoint_epoch=3.pt.partial").exists()
    whole, _ = _run(tmp_path / "whole2", 3)
    assert _same(whole, resumed)


def test_unreadable_only_checkpoint_names_the_file(tmp_path):
    (tmp_path / "checkpoint_epoch=3.pt").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"checkpoint_epoch=3\.pt"):
        _run(tmp_path, 4, resume=True)


def test_resume_without_checkpoint_and_start_over_refusals(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'checkpoint_epoch=\\*.pt' to resume from"):
        _run(tmp_path, 1, resume=True)
    _run(tmp_path, 1)
    model = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume True .* --overwrite True"):
        _run(tmp_path, 1)
    assert (tmp_path / "model.pt").read_bytes() == model
    _run(tmp_path, 1, overwrite=True)  # the user asked for it


def test_nan_input_stops_training_naming_no_saved_model(tmp_path):
    with pytest.raises(FloatingPointError, match="loss is nan"):
        _run(tmp_path, 2, nan_at=3)
    assert not (tmp_path / "model.pt").exists()
    assert not list(tmp_path.glob("checkpoint*"))


def test_completed_run_resumed_changes_nothing(tmp_path):
    network, _ = _run(tmp_path, 2)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again, _ = _run(tmp_path, 2, resume=True)
    assert _same(network, again)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_last_epoch_model_kept_when_asked(tmp_path):
    network, evaluator = _run(tmp_path, 3, keep="last")
    saved = torch.load(tmp_path / "model.pt")
    assert all(torch.equal(saved[k], v) for k, v in network.state_dict().items())
    assert evaluator.state.best_metric_epoch != 3


@pytest.mark.parametrize("earlier_epochs", [1, 3])
def test_overwrite_replaces_the_earlier_runs_checkpoints_once_it_has_its_own(tmp_path, earlier_epochs):
    _run(tmp_path, earlier_epochs)
    _run(tmp_path, 1, overwrite=True)
    assert [p.name for p in tmp_path.glob("checkpoint*")] == ["checkpoint_epoch=1.pt"]
    assert torch.load(tmp_path / "checkpoint_epoch=1.pt", weights_only=False)["trainer"]["iteration"] == 3
