"""CopyItemsToMetad: a sample's fields travel in the image's meta data through collation and inference."""

import pytest
import torch
from monai.data import MetaTensor, decollate_batch, list_data_collate
from monai.inferers import SlidingWindowInferer

from common.transforms import CopyItemsToMetad


def sample():
    image = MetaTensor(torch.rand(1, 16, 24), meta={"filename_or_obj": "/data/P_A04Z01C04.tif"})
    return {"image": image, "id": "P_", "magnification": 40, "channels": [1, 3]}


def test_fields_reach_the_prediction_of_an_inferer():
    data = sample()
    moved = CopyItemsToMetad("image", ["id", "magnification", "channels"])(data)
    assert "id" not in data["image"].meta  # the input is left as it was
    assert moved["image"].data_ptr() == data["image"].data_ptr()  # same pixels, not a copy
    batch = list_data_collate([moved])
    pred = SlidingWindowInferer(roi_size=(8, 8), overlap=0.0)(batch["image"], lambda x: 2 * x)
    meta = decollate_batch({"pred": pred})[0]["pred"].meta
    assert (meta["id"], int(meta["magnification"]), [int(c) for c in meta["channels"]]) == ("P_", 40, [1, 3])
    assert meta["filename_or_obj"] == "/data/P_A04Z01C04.tif"


def test_missing_items_and_plain_tensors_are_errors():
    with pytest.raises(KeyError, match="'well'"):
        CopyItemsToMetad("image", ["id", "well"])(sample())
    assert "well" not in CopyItemsToMetad("image", ["id", "well"], allow_missing_items=True)(sample())["image"].meta
    with pytest.raises(TypeError, match="image: expected a MetaTensor"):
        CopyItemsToMetad("image", "id")({**sample(), "image": torch.zeros(1, 2, 2)})
