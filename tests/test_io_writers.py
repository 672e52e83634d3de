"""How binary masks are encoded for writing."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from common.io import mask_to_uint8


def test_mask_to_uint8_maps_0_1_to_0_255_and_keeps_meta_data():
    mask = MetaTensor(torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]), meta={"filename_or_obj": "a.tif"})
    encoded = mask_to_uint8(mask)
    assert isinstance(encoded, MetaTensor) and encoded.meta["filename_or_obj"] == "a.tif"
    assert encoded.dtype == torch.uint8 and encoded.tolist() == [[[0, 255], [255, 0]]]
    array = mask_to_uint8(np.array([[True, False]]))
    assert array.dtype == np.uint8 and array.tolist() == [[255, 0]]


@pytest.mark.parametrize("values", [[0.0, 0.5], [0.0, 2.0], [-1.0, 1.0]])
def test_mask_to_uint8_refuses_values_other_than_0_and_1(values):
    with pytest.raises(ValueError, match="expected values 0 and 1"):
        mask_to_uint8(torch.tensor(values))
