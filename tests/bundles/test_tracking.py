"""``monai.bundle run ... --tracking mlflow``: MONAI's MLflow handlers attach to every bundle's trainer and
evaluator (config level, all bundles), and one small bundle's training and evaluation record runs in a local
SQLite store (MONAI 1.6 refuses MLflow file stores)."""

import copy

import pytest
from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS
from monai.bundle.workflows import ConfigWorkflow

from common.data.synthetic import write_dataset
from tests.support.bundles import BUNDLES, REPO, load_spec, parser_for, run_cli


@pytest.mark.parametrize("bundle", BUNDLES, ids=[bundle.name for bundle in BUNDLES])
def test_tracking_attaches_to_the_trainer_and_the_evaluator(bundle, tmp_path):
    """What ``--tracking mlflow`` patches (MONAI's own ``patch_bundle_tracking``) lands in the handler lists the
    bundle's trainer and evaluator are built from, in training and in evaluation."""
    for names, engines in [
        (["train.json"], {"train#trainer": "train_handlers", "validate#evaluator": "val_handlers"}),
        (
            ["train.json", "multi_gpu_train.json"],
            {"train#trainer": "train_handlers", "validate#evaluator": "val_handlers"},
        ),
        (["train.json", "evaluate.json"], {"validate#evaluator": "val_handlers"}),
    ]:
        parser = parser_for(bundle, *names)
        parser["bundle_root"] = str(tmp_path)  # the patch writes the executed config under output_dir
        ConfigWorkflow.patch_bundle_tracking(parser, copy.deepcopy(DEFAULT_MLFLOW_SETTINGS))
        ids = DEFAULT_MLFLOW_SETTINGS["handlers_id"]
        for key, setting in ids.items():
            engine_id = setting["id"]
            if engine_id not in engines:
                assert engine_id not in parser or key == "trainer", f"{bundle.name} {names}: {engine_id}"
                continue
            added = parser.get(setting["handlers"])[-1]
            assert added["_target_"] == "MLFlowHandler", f"{bundle.name} {names}: {setting['handlers']}"
            # the engine's handler argument is built from that list
            built_from = str(parser.get(f"{engine_id}#{engines[engine_id]}")).replace("::", "#")
            assert f"@{setting['handlers']}" in built_from, f"{bundle.name} {names}: {engine_id}"
        if "evaluate.json" in names:
            assert "close_tracking(@validate#handlers)" in str(parser.get("finalize")).replace("::", "#")


def test_mlflow_records_training_and_evaluation(tmp_path):
    import mlflow
    from monai.utils import path_to_sqlite_uri

    bundle = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
    spec = load_spec(bundle)
    synthetic = dict(spec["synthetic"])
    data = write_dataset(synthetic.pop("layout"), tmp_path / "data", **synthetic)
    uri = path_to_sqlite_uri(str(tmp_path / "mlruns.db"))
    overrides = {
        **spec["overrides"],
        "dataset_dir": str(data),
        "bundle_root": str(tmp_path / "root"),
        "tracking": "mlflow",
        "tracking_uri": uri,
        "experiment_name": "dsb_tracking_test",
    }
    run_cli(bundle, "training", ["train.json"], overrides)
    run_cli(bundle, "evaluating", ["train.json", "evaluate.json"], overrides)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("dsb_tracking_test")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    training, evaluation = (run.data for run in runs)
    iterations = spec["overrides"]["epochs"] * spec["overrides"]["iterations_per_epoch"]
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert len(history) == iterations and all(point.value > 0 for point in history)
    assert "val_mean_f1" in training.metrics  # the validator logs into the trainer's run
    assert training.params["max_epochs"] == str(spec["overrides"]["epochs"])
    # the report's means, by the evaluator's handler (f1@0.50 of the report named as MLflow accepts)
    assert {"mean_f1", "f1_0.50"} <= set(evaluation.metrics)
    assert "epoch_length" in evaluation.params
