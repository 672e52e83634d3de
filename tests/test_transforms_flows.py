"""LabelsToFlows(d) and FlowsToLabels(d): channel order, scale, types, keys, bad input."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from common.flows import CELLPOSE_FLOW_SCALE, labels_to_flows
from common.metrics import match_instances
from common.postprocess import FlowsToLabels, FlowsToLabelsd
from common.transforms import LabelsToFlows, LabelsToFlowsd
from tests.support.shapes import random_cells


@pytest.fixture(scope="module")
def labels():
    return random_cells((96, 80), 25, seed=21)[None]  # (1, H, W) as MONAI loaders deliver it


def test_target_is_scaled_flows_then_foreground(labels):
    target = LabelsToFlows()(torch.from_numpy(labels))
    assert target.shape == (3,) + labels.shape[1:] and target.dtype == torch.float32
    torch.testing.assert_close(target[:2], CELLPOSE_FLOW_SCALE * labels_to_flows(labels[0])[0])
    torch.testing.assert_close(target[2], torch.from_numpy(labels[0] > 0).float())
    mediar = dict(log_heat=True, neighbour_heat=True, centre="median")
    mediar_target = LabelsToFlows(flow_scale=1.0, **mediar)(labels[0])  # (H, W) NumPy in, NumPy out
    assert isinstance(mediar_target, np.ndarray)
    np.testing.assert_allclose(mediar_target[:2], labels_to_flows(labels[0], **mediar)[0].numpy())
    assert not np.allclose(mediar_target[:2], target[:2].numpy() / CELLPOSE_FLOW_SCALE)


def test_meta_tensor_keeps_its_metadata(labels):
    image = MetaTensor(torch.from_numpy(labels), meta={"filename_or_obj": "cell_00001_label.tiff"})
    target = LabelsToFlows()(image)
    assert isinstance(target, MetaTensor) and target.meta["filename_or_obj"] == "cell_00001_label.tiff"


def test_post_processing_inverts_the_target(labels):
    target = LabelsToFlows()(torch.from_numpy(labels))
    logits = torch.cat([target[:2], target[2:] * 8 - 4])
    result = FlowsToLabels()(logits)
    assert result.shape == labels.shape and result.dtype == torch.int32
    scores = match_instances(labels[0], result[0])
    assert scores["f1"] == 1.0 and scores["mean_iou"] >= 0.99
    probabilities = FlowsToLabels(cellprob_logits=False)(target)  # threshold 0.5 on probabilities
    assert torch.equal(probabilities, result)


def test_dictionary_versions(labels):
    data = {"label": labels, "image": np.zeros_like(labels, dtype=np.float32)}
    out = LabelsToFlowsd("label", output_keys="flows")(data)
    assert out["label"] is labels and out["flows"].shape == (3,) + labels.shape[1:]
    pred = FlowsToLabelsd("flows", output_keys="pred", min_size=10)(out)
    assert pred["pred"].shape == labels.shape and pred["pred"].max() > 0
    in_place = LabelsToFlowsd(["label", "missing"], allow_missing_keys=True)(data)
    assert in_place["label"].shape[0] == 3 and "missing" not in in_place
    with pytest.raises(KeyError):
        LabelsToFlowsd("missing")(data)
    with pytest.raises(TypeError, match="key 'image'.*integer"):
        LabelsToFlowsd("image")(data)  # float labels: the error names the key
    with pytest.raises(ValueError, match="output_keys"):
        LabelsToFlowsd(["label", "image"], output_keys=["a", "b", "c"])


def test_bad_input(labels):
    with pytest.raises(ValueError, match="label.*shape"):
        LabelsToFlows()(np.zeros((2, 8, 8), np.int32))
    with pytest.raises(TypeError, match="integer"):
        LabelsToFlows()(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="pred.*shape"):
        FlowsToLabels()(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(TypeError, match="pred.*floating"):
        FlowsToLabels()(np.zeros((3, 8, 8), np.int32))
    with pytest.raises(ValueError, match="cellprob_threshold"):
        FlowsToLabels(cellprob_logits=False, cellprob_threshold=2.0)


def test_all_background():
    target = LabelsToFlows()(np.zeros((1, 16, 16), np.int32))
    assert not target.any()
    assert not FlowsToLabels()(np.zeros((3, 16, 16), np.float32)).any()
