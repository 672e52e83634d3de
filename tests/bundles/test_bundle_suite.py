"""The checks every bundle of the collection passes, run for each folder under bundles/.

Static checks (files, metadata schema, config ids, network input/output, TorchScript export) run in-process;
training, evaluation and inference run through the real ``python -m monai.bundle run`` CLI on synthetic data
in the bundle's native layout, and multi-GPU training through ``torchrun`` with two CPU (Gloo) processes.
Runs write under a temporary ``bundle_root``: nothing is written into the repository.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

from common.bundle import REQUIRED_FILES
from tests.support.bundles import SCHEMA, SUPPORT_ENV, attach_config, configs, free_port, parser_for, run_cli
from tests.support.reference_metrics import REFERENCE_METRICS

SHARED_IDS = [
    "bundle_root",
    "device",
    "dataset_dir",
    "output_dir",
    "network_def",
    "network",
    "preprocessing",
    "postprocessing",
    "inferer",
    "run",
]
TRAIN_IDS = SHARED_IDS + [
    "train#trainer",
    "train#handlers",
    "train#dataset",
    "validate#evaluator",
    "validate#handlers",
    "val_interval",
    "training",
]


def test_bundle_files(bundle):
    missing = [name for name in REQUIRED_FILES if not (bundle / name).is_file()]
    assert not missing, f"{bundle.name} lacks {missing}"


def test_metadata_validates_against_the_model_zoo_schema(bundle):
    if not SCHEMA.exists():
        pytest.skip(f"model-zoo schema not found at {SCHEMA} (it comes with ../shared)")
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(SCHEMA))


def test_version_is_in_changelog(bundle):
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert metadata["version"] in metadata["changelog"]


def test_config_ids(bundle):
    train = parser_for(bundle, "train.json")
    assert [i for i in TRAIN_IDS if i not in train] == []
    evaluate = parser_for(bundle, "train.json", "evaluate.json")
    assert "evaluating" in evaluate and "run" in evaluate
    inference = parser_for(bundle, "inference.json")
    assert [i for i in SHARED_IDS + ["inferring"] if i not in inference] == []
    multi_gpu = parser_for(bundle, "train.json", "multi_gpu_train.json")
    assert "finalize" in multi_gpu


def test_network_input_output_matches_metadata(bundle, spec):
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=configs(bundle, "inference.json"),
        device="cpu",
        n=1,
        bundle_root=str(bundle),
        **spec.get("inference_overrides", {}),
    )


def test_torchscript_export_equals_eager_network(bundle, spec, tmp_path):
    overrides = spec.get("inference_overrides", {})
    parser = parser_for(bundle, "inference.json")
    parser.update(overrides)
    parser["bundle_root"] = str(tmp_path)
    network = parser.get_parsed_content("network_def")
    torch.save(network.state_dict(), tmp_path / "model.pt")
    fmt = parser.get("_meta_")["network_data_format"]["inputs"]["image"]
    shape = [1, fmt["num_channels"], *fmt["spatial_shape"]]
    trace = {"use_trace": True, "input_shape": shape} if spec.get("torchscript") == "trace" else {}
    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(tmp_path / "model.pt"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=configs(bundle, "inference.json"),
        bundle_root=str(tmp_path),
        **trace,
        **overrides,
    )
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    x = torch.rand(*shape)
    network.eval()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x))


@pytest.fixture(scope="module")
def trained(bundle, spec, dataset, tmp_path_factory) -> Path:
    """bundle_root of one short training run through the CLI."""
    root = tmp_path_factory.mktemp(f"{bundle.name}_root")
    output = run_cli(
        bundle, "training", ["train.json"], {**spec["overrides"], "dataset_dir": str(dataset), "bundle_root": str(root)}
    )
    assert "train_loss" in output  # progress is shown while training
    return root


def test_training_writes_checkpoints(spec, trained):
    assert (trained / spec["outputs"].get("model", "models/model.pt")).is_file()
    assert list((trained / "models").glob("checkpoint*.pt"))


def test_training_writes_tensorboard_logs(bundle, trained):
    """TensorBoard events of the run: the loss per iteration, the key validation metric and the panel of a
    validation image per evaluation."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((trained / "logs").glob("events.out.tfevents.*"))
    assert len(events) == 1  # one writer shared by the trainer's and the validator's handlers
    accumulator = EventAccumulator(str(events[0]), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    key_metric = next(iter(parser_for(bundle, "train.json").get("validate#key_metric")))
    scalars = accumulator.Tags()["scalars"]
    assert {"train_loss", key_metric} <= set(scalars), scalars
    assert len(accumulator.Scalars("train_loss")) == accumulator.Scalars("train_loss")[-1].step > 0
    assert [event.step for event in accumulator.Scalars(key_metric)] == [1]  # one epoch, validated once
    (panel,) = accumulator.Images("validation_panel")
    assert panel.step == 1 and panel.height > 0 and (panel.width - 8) % 3 == 0  # input | truth | prediction


def test_interrupted_training_resumes(bundle, spec, dataset, trained):
    overrides = {**spec["overrides"], "dataset_dir": str(dataset), "bundle_root": str(trained)}
    overrides["epochs"] = overrides["epochs"] + 1
    output = run_cli(bundle, "training", ["train.json"], {**overrides, "resume": True})
    assert f"epoch {spec['overrides']['epochs']} until {overrides['epochs']} epochs" in output


def test_evaluation_metric_equals_one_recomputed_from_its_predictions(bundle, spec, dataset, trained, tmp_path):
    """The evaluation's report against the spec's ``metric`` recomputed by ``tests.support.reference_metrics`` from
    each image's prediction and label as the evaluator's handlers got them (recorded by a test-only handler): the
    mean of every column over all rows, and per value of each str field of the rows (the report's ``groups``).
    The spec's ``evaluate_overrides`` apply to this run only (e.g. a threshold that gives a one-epoch model's
    predictions something to match)."""
    recorder = attach_config(
        tmp_path / "record_outputs.json",
        "validate#evaluator",
        "output_recorder",
        {"_target_": "tests.support.recording.OutputRecorder", "output_dir": str(tmp_path / "outputs")},
    )
    run_cli(
        bundle,
        "evaluating",
        ["train.json", "evaluate.json", recorder],
        {
            **spec["overrides"],
            **spec.get("evaluate_overrides", {}),
            "dataset_dir": str(dataset),
            "bundle_root": str(trained),
        },
        env=SUPPORT_ENV,
    )
    report = json.loads((trained / spec["outputs"]["evaluate"]).read_text())
    recorded = sorted((tmp_path / "outputs").glob("*.npz"))
    assert report["images"] == len(recorded) > 0
    reference = REFERENCE_METRICS[spec["metric"]]
    rows = []
    for path in recorded:
        scored = reference(**np.load(path))
        rows += [scored] if isinstance(scored, dict) else scored
    fields = {key for row in rows for key, value in row.items() if isinstance(value, str)}
    groups = {(field, row[field]) for row in rows for field in fields if field in row}
    for summary, members in [(report, rows)] + [
        (report["groups"][field][value], [row for row in rows if row.get(field) == value]) for field, value in groups
    ]:
        assert summary.get("rows", len(members)) == len(members)
        for column in {key for row in members for key in row} - fields:
            values = [row[column] for row in members if column in row and not np.isnan(row[column])]
            # float64 metrics agree to rounding; SSIMs computed in float32 (adipocyte, as tf.image.ssim) to ~1e-8
            assert summary[column] == pytest.approx(np.mean(values), rel=1e-6, abs=1e-9), column
    # pictures beside the report: panels of the first images, the distribution of the per-image metrics
    panels = sorted((trained / "eval").glob("panels*/*.png"))
    assert len(panels) == min(4, len(recorded)), panels
    plot = trained / spec["outputs"]["evaluate"].replace(".json", "_distribution.png")
    assert plot.is_file() and plot.read_bytes().startswith(b"\x89PNG")


def test_inference_writes_one_output_per_image(bundle, spec, dataset, trained, tmp_path):
    inputs = dataset / spec["inference_input"]
    run_cli(
        bundle,
        "inferring",
        ["inference.json"],
        {
            **spec.get("inference_overrides", {}),
            "dataset_dir": str(inputs),
            "bundle_root": str(trained),
            "output_dir": str(tmp_path / "out"),
        },
    )
    written = sorted((tmp_path / "out").glob(spec["outputs"]["inference_glob"]))
    expected = spec["outputs"].get("inference_count", len([p for p in inputs.iterdir() if p.is_file()]))
    assert len(written) == expected > 0


def test_multi_gpu_training_splits_the_data_and_saves_the_shared_model(bundle, spec, dataset, tmp_path):
    """Two CPU (Gloo) processes: each trains on its own shard of every epoch, no item is left out beyond
    DistributedSampler's padding, and the saved model is the one both ranks hold at the end."""
    launcher = (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
    )
    recorder = attach_config(
        tmp_path / "record_shards.json",
        "train#trainer",
        "shard_recorder",
        {"_target_": "tests.support.recording.ShardRecorder", "output_dir": str(tmp_path / "shards")},
    )
    run_cli(
        bundle,
        "training",
        ["train.json", "multi_gpu_train.json", recorder],
        {**spec["overrides"], "dataset_dir": str(dataset), "bundle_root": str(tmp_path / "root")},
        launcher=launcher,
        env=SUPPORT_ENV,
    )
    assert list((tmp_path / "root" / "models").glob("checkpoint*.pt"))
    assert len(list((tmp_path / "root" / "logs").glob("events.out.tfevents.*"))) == 1  # TensorBoard on rank 0 alone
    ranks = [json.loads((tmp_path / "shards" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    dataset_sources = ranks[0]["dataset"]
    assert ranks[1]["dataset"] == dataset_sources and len(dataset_sources) >= 2
    size, padded = len(dataset_sources), 2 * -(-len(dataset_sources) // 2)
    assert len(ranks[0]["epochs"]) == len(ranks[1]["epochs"]) == spec["overrides"]["epochs"]
    for epoch in zip(*(record["epochs"] for record in ranks)):
        shards = [set(rank["shard"]) for rank in epoch]
        assert [len(rank["shard"]) for rank in epoch] == [padded // 2] * 2
        assert shards[0] | shards[1] == set(range(size))  # none dropped
        assert len(shards[0] & shards[1]) <= padded - size  # on both ranks only as DistributedSampler's padding
        for rank, shard in zip(epoch, shards):  # what each rank trained on came from its shard
            assert rank["sources"] and rank["iterations"] > 0
            own = {dataset_sources[index] for index in shard}
            assert set(rank["sources"]) <= own
            if rank["iterations"] == rank["loader_length"] and not rank["drop_last"]:
                assert set(rank["sources"]) == own
    saved = torch.load(tmp_path / "root" / spec["outputs"].get("model", "models/model.pt"), weights_only=True)
    for rank in (0, 1):
        final = torch.load(tmp_path / "shards" / f"rank{rank}.pt", weights_only=True)
        assert list(final) == list(saved)
        assert all(torch.equal(final[key], saved[key].cpu()) for key in final), f"rank {rank}"
