"""Each MEDIAR training phase builds the pipeline MEDIAR's code gives it (train_tools/data_utils/transforms.py,
datasetter.py, config/step1_pretraining, config/step2_finetuning), and its boundary exclusion acts as that code
does (on labels repeated to three channels), not as its comments intend."""

import json

import numpy as np
import pytest
import torch
from skimage.segmentation import find_boundaries

from common.data.synthetic import write_dataset
from tests.support.bundles import REPO, load_spec, parser_for
from tests.support.shapes import random_cells

BUNDLE = REPO / "bundles" / "mediar_cell_segmentation"
LOAD = ["LoadImaged", "LoadInstanceLabelsd", "CheckSpatialShapesd", "AsChannelsd", "NonZeroPercentileNormalized"]
CROP = ["SpatialPadd", "RandSpatialCropd", "RandAxisFlipd", "RandRotate90d"]
INTENSITY = [
    "RandCellAwareIntensityd",
    "RandGaussianNoised",
    "RandAdjustContrastd",
    "RandGaussianSmoothd",
    "RandHistogramShiftd",
    "RandGaussianSharpend",
]
TENSORS = ["CastToTyped", "EnsureTyped"]
TRAIN = LOAD + ["RandZoomd"] + CROP + INTENSITY + TENSORS  # MEDIAR's train_transforms
PUBLIC = LOAD + ["BoundaryExclusiond"] + CROP + TENSORS  # MEDIAR's public_transforms, label transpose off


def names(parser, pipeline_id):
    return [type(t).__name__ for t in parser.get_parsed_content(pipeline_id).transforms]


@pytest.mark.parametrize(
    "overlays, train, replay",
    [
        ([], TRAIN, None),  # fine-tuning 1
        (["pretrain.json"], TRAIN, None),  # phase 1: public data, no boundary exclusion
        (["pretrain.json", "pretrain_phase2.json"], PUBLIC, None),  # phase 2: public + target data
        (["finetune_replay.json"], TRAIN, PUBLIC),  # fine-tuning 2: replayed public data
    ],
)
def test_each_phase_builds_mediars_pipeline(overlays, train, replay):
    parser = parser_for(BUNDLE, "train.json", *overlays)
    assert names(parser, "train#preprocessing") == train
    if replay:
        assert names(parser, "train#replay#preprocessing") == replay


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A target set (NeurIPS layout) and one public set."""
    root = tmp_path_factory.mktemp("mediar_phases")
    return write_dataset("neurips", root / "target", n=10, size=64, seed=0), write_dataset(
        "neurips", root / "public", n=3, size=64, seed=1
    )


def phase_parser(overlays, datasets, tmp_path, **overrides):
    parser = parser_for(BUNDLE, "train.json", *overlays)
    target, public = datasets
    parser.update(
        {
            **load_spec(BUNDLE)["overrides"],
            "dataset_dir": str(target),
            "bundle_root": str(tmp_path),
            "public_datasets": [{"name": "public", "layout": "neurips", "root": str(public)}],
            "cache_rate": 0.0,
            **overrides,
        }
    )
    return parser


@pytest.mark.parametrize(
    "overlays, data",
    [
        ([], ["target"]),  # fine-tuning 1: the target set's training split
        (["pretrain.json"], ["public"]),  # phase 1: public data only
        (["pretrain.json", "pretrain_phase2.json"], ["public", "target"]),  # phase 2: public + target data
        (["finetune_replay.json"], ["target"]),  # fine-tuning 2: the target set, public data replayed
    ],
)
def test_each_phase_trains_on_mediars_data(overlays, data, datasets, tmp_path):
    parser = phase_parser(overlays, datasets, tmp_path, sampling_file=None)
    split = [item["id"] for item in parser.get_parsed_content("target_datalist")]
    assert len(split) == 6  # 60 % of 10 images (the suite's split_fractions)
    expected = {"public": ["public/cell_00001", "public/cell_00002", "public/cell_00003"], "target": split}
    assert [item["id"] for item in parser.get_parsed_content("train#dataset").data] == [
        item for name in data for item in expected[name]
    ]


def test_phase_2_and_fine_tuning_2_settings():
    phase2 = parser_for(BUNDLE, "train.json", "pretrain.json", "pretrain_phase2.json")
    assert phase2.get_parsed_content("epochs") == 60 and phase2.get_parsed_content("cosine_period") == 60
    assert phase2.get_parsed_content("init_ckpt") is None  # pre-training starts from the ImageNet encoder
    replay = parser_for(BUNDLE, "train.json", "finetune_replay.json")
    assert replay.get_parsed_content("sampling_file").endswith("models/amplified_sampling.json")  # finetuning2.json


def test_modality_discovery_writes_the_sampling_that_fine_tuning_reads(datasets, tmp_path):
    phase1 = tmp_path / "models" / "pretrain_phase1" / "model.pt"
    phase1.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(phase_parser([], datasets, tmp_path).get_parsed_content("network_def").state_dict(), phase1)
    discovery = phase_parser(["modalities.json"], datasets, tmp_path, clusters=2, min_samples=4, embedding_size=64)
    discovery.get_parsed_content("discovering")
    sampling = json.loads((tmp_path / "models" / "amplified_sampling.json").read_text())
    split = [item["id"] for item in discovery.get_parsed_content("target_datalist")]
    assert sorted(sampling["items"]) == sorted(split) and sum(sampling["cluster_sizes"]) == 6
    repeats = sum(entry["repeats"] for entry in sampling["items"].values())
    assert repeats >= 8  # each of the 2 clusters gives at least min_samples 4 items per epoch
    replay = phase_parser(["finetune_replay.json"], datasets, tmp_path)
    assert len(replay.get_parsed_content("train#dataset").data) == repeats


def test_one_flow_variant_feeds_the_loss_and_the_post_processing():
    for files in (["train.json"], ["inference.json"]):
        parser = parser_for(BUNDLE, *files)
        parser["flow_variant"] = {"log_heat": False, "neighbour_heat": False, "centre": "mean"}
        postprocessing = "flows_to_labels" if files == ["train.json"] else "postprocessing#transforms#0"
        for component in [postprocessing, "loss"] if files == ["train.json"] else [postprocessing]:
            assert [
                parser.get_parsed_content(f"{component}#{key}") for key in ("log_heat", "neighbour_heat", "centre")
            ] == [False, False, "mean"], component


def test_the_label_transpose_of_mediars_2024_code_is_an_option():
    parser = parser_for(BUNDLE, "train.json", "pretrain.json", "pretrain_phase2.json")
    parser["transpose_public_labels"] = True
    assert (
        names(parser, "train#preprocessing") == LOAD + ["BoundaryExclusiond"] + CROP + ["Rotate90d", "Flipd"] + TENSORS
    )
    labels = torch.arange(12).reshape(1, 3, 4)
    out = labels
    for transform in parser.get_parsed_content("label_transpose"):
        out = transform({"label": out})["label"]
    assert torch.equal(torch.as_tensor(out)[0], labels[0].T)  # the label only, against its image


def mediar_boundary_exclusion(labels):
    """MEDIAR's BoundaryExclusion rewritten for (H, W) labels as its loader hands them over: repeated to
    (H, W, 3), so cell sizes are counted three times and the (H, W, 3) shape makes its frame slice empty."""
    stacked = np.repeat(labels[..., None], 3, axis=-1)
    thinned = np.where(find_boundaries(stacked, connectivity=1, mode="thick"), 0, stacked)
    ids, counts = np.unique(stacked, return_counts=True)
    out = np.where(np.isin(stacked, ids[counts < 196]), stacked, thinned)
    _, cols, depth = stacked.shape
    frame = np.zeros_like(stacked)
    frame[:, 2 : cols - 2, 2 : depth - 2] = 1  # (H, W, 3)[:, 2:W-2, 2:1]: nothing
    return (out + stacked * frame)[..., 0]


def test_default_boundary_exclusion_acts_as_mediars_code():
    labels = random_cells((60, 70), 25, seed=2)
    areas = np.bincount(labels.ravel())[1:]
    assert ((areas >= 66) & (areas < 196)).any() and (areas < 66).any()  # cells on both sides of 66 pixels
    exclusion = parser_for(BUNDLE, "train.json").get_parsed_content("boundary_exclusion")
    out = exclusion({"label": labels[None].astype(np.int32)})["label"][0]
    expected = mediar_boundary_exclusion(labels)
    np.testing.assert_array_equal(out, expected)
    assert (out != labels).sum() > 50
