"""The MEDIAR bundle learns on synthetic NeurIPS-layout data, trained and evaluated through its CLI.

The whole MEDIAR training pipeline runs (zoom, crops, flips, cell-aware intensity and the other intensity
augmentations, flows computed in the loss, AdamW with a cosine schedule), on a small network: MiT-B0 with a
narrow decoder instead of MiT-B5, trained from scratch (no ImageNet or MEDIAR weights offline) at lr 1e-3
instead of the fine-tuning rate 2e-5, on 128-pixel images. Evaluation is the challenge metric with flip TTA.
"""

import pytest

from common.data.synthetic import write_dataset
from tests.support.bundles import REPO, evaluate_run, save_untrained_weights, train_and_evaluate

BUNDLE = REPO / "bundles" / "mediar_cell_segmentation"
SMALL = {
    "pretrained": False,
    "encoder": "mit_b0",
    "decoder_channels": [32, 32, 16, 16, 16],
    "attention_channels": 8,
    "patch_size": [128, 128],
    "split_fractions": [0.6, 0.2, 0.2],
    "num_workers": 0,
}
EPOCHS = 30  # 5 iterations each (18 training images, batch 4): 150 iterations
REPORT = "cellseg_metrics_test.json"


@pytest.mark.slow
def test_training_a_few_hundred_iterations_beats_an_untrained_network(tmp_path):
    dataset = write_dataset("neurips", tmp_path / "neurips", n=30, size=128, seed=3)  # 18 / 6 / 6 images

    untrained = tmp_path / "untrained"
    network_size = ("encoder", "decoder_channels", "attention_channels")
    save_untrained_weights(BUNDLE, untrained, {key: SMALL[key] for key in network_size})
    baseline = evaluate_run(BUNDLE, dataset, untrained, SMALL, REPORT)

    training = {
        "epochs": EPOCHS,
        "cosine_period": EPOCHS,
        "learning_rate": 1e-3,
        "min_learning_rate": 1e-5,
        "batch_size": 4,
        "cache_rate": 1.0,
        "val_interval": EPOCHS,
    }
    result = train_and_evaluate(BUNDLE, dataset, tmp_path / "trained", SMALL, training, REPORT)

    print(f"untrained: {baseline}\ntrained: {result}")
    assert baseline["images"] == result["images"] == 6
    assert baseline["f1"] < 0.1
    assert result["f1"] > 0.5, result
