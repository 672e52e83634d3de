"""Each MEDIAR training phase builds the pipeline MEDIAR's code gives it (train_tools/data_utils/transforms.py,
datasetter.py, config/step1_pretraining, config/step2_finetuning), and its boundary exclusion acts as that code
does (on labels repeated to three channels), not as its comments intend."""

import numpy as np
import pytest
import torch
from skimage.segmentation import find_boundaries

from tests.support.bundles import REPO, parser_for
from tests.support.shapes import random_cells

BUNDLE = REPO / "bundles" / "mediar_cell_segmentation"
LOAD = ["LoadImaged", "LoadInstanceLabelsd", "CheckSpatialShapesd", "AsChannelsd", "NonZeroPercentileNormalized"]
CROP = ["SpatialPadd", "RandSpatialCropd", "RandAxisFlipd", "RandRotate90d"]
INTENSITY = ["CellAwareIntensityd", "RandGaussianNoised", "RandAdjustContrastd", "RandGaussianSmoothd",
             "RandHistogramShiftd", "RandGaussianSharpend"]
TENSORS = ["CastToTyped", "EnsureTyped"]
TRAIN = LOAD + ["RandZoomd"] + CROP + INTENSITY + TENSORS  # MEDIAR's train_transforms
PUBLIC = LOAD + ["BoundaryExclusiond"] + CROP + TENSORS  # MEDIAR's public_transforms, label transpose off


def names(parser, pipeline_id):
    return [type(t).__name__ for t in parser.get_parsed_content(pipeline_id).transforms]


@pytest.mark.parametrize("overlays, train, replay", [
    ([], TRAIN, None),  # fine-tuning 1
    (["pretrain.json"], TRAIN, None),  # phase 1: public data, no boundary exclusion
    (["pretrain.json", "pretrain_phase2.json"], PUBLIC, None),  # phase 2: public + target data
    (["finetune_replay.json"], TRAIN, PUBLIC),  # fine-tuning 2: replayed public data
])
def test_each_phase_builds_mediars_pipeline(overlays, train, replay):
    parser = parser_for(BUNDLE, "train.json", *overlays)
    assert names(parser, "train#preprocessing") == train
    if replay:
        assert names(parser, "train#replay#preprocessing") == replay


def test_phase_2_targets_and_fine_tuning_2_sampling():
    phase2 = parser_for(BUNDLE, "train.json", "pretrain.json", "pretrain_phase2.json")
    assert phase2["include_target"] is True and phase2.get_parsed_content("epochs") == 60
    assert phase2.get_parsed_content("cosine_period") == 60
    replay = parser_for(BUNDLE, "train.json", "finetune_replay.json")
    assert replay.get_parsed_content("sampling_file").endswith("models/amplified_sampling.json")  # finetuning2.json


def test_the_label_transpose_of_mediars_2024_code_is_an_option():
    parser = parser_for(BUNDLE, "train.json", "pretrain.json", "pretrain_phase2.json")
    parser["transpose_public_labels"] = True
    assert names(parser, "train#preprocessing") == LOAD + ["BoundaryExclusiond"] + CROP + ["Rotate90d", "Flipd"] + TENSORS
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
