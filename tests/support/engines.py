"""A small MONAI training run for the handler tests: a CPU trainer minimising MSE, validated every epoch."""

import torch
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanSquaredError, ValidationHandler, from_engine


def mse_engines(
    network: torch.nn.Module, optimizer, train_loader, val_loader, epochs: int, **evaluator_args
) -> tuple[SupervisedTrainer, SupervisedEvaluator]:
    """A ``SupervisedTrainer`` of ``network`` on (B, C, H, W) ``image`` / ``label`` batches with ``MSELoss`` for
    ``epochs``, and its ``SupervisedEvaluator`` (key metric ``val_mse``, further arguments ``evaluator_args``) run
    after every epoch; returns ``(trainer, evaluator)``."""
    evaluator = SupervisedEvaluator(
        device="cpu",
        val_data_loader=val_loader,
        network=network,
        key_val_metric={"val_mse": MeanSquaredError(output_transform=from_engine(["pred", "label"]))},
        **evaluator_args,
    )
    trainer = SupervisedTrainer(
        device="cpu",
        max_epochs=epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=torch.nn.MSELoss(),
        train_handlers=[ValidationHandler(1, evaluator)],
    )
    return trainer, evaluator
