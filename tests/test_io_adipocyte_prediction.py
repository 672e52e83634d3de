"""adipocyte_pairs (network items of adipocyte samples) and SaveChannelsd (one file per predicted channel)."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from common.data.synthetic import write_dataset
from common.io import LayoutError, SaveChannelsd, adipocyte_datalist, adipocyte_pairs, read_image


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return adipocyte_datalist(write_dataset("adipocyte", tmp_path_factory.mktemp("adipocyte"), n=6, size=32, seed=2))


def test_pairs_hold_the_stack_and_the_chosen_targets(samples):
    items = adipocyte_pairs(samples, [3, 1])
    assert len(items) == len(samples)
    for item, sample in zip(items, samples):
        assert item["image"] == sample["brightfield"] and item["channels"] == [1, 3]
        assert item["label"] == [sample["C01"], sample["C03"]]
        assert {key: item[key] for key in ("magnification", "well", "field", "id")} == {
            key: sample[key] for key in ("magnification", "well", "field", "id")
        }


def test_pairs_per_magnification_leave_out_the_others_with_a_warning(samples):
    with pytest.warns(UserWarning, match="no channel to predict for 2 at 40x, 2 at 60x"):
        items = adipocyte_pairs(samples, {20: [2]}, targets=False)
    assert [item["magnification"] for item in items] == [20, 20]
    assert all("label" not in item and item["channels"] == [2] for item in items)


def test_pairs_reject_unknown_channels_and_missing_targets(samples):
    with pytest.raises(ValueError, match=r"among \[1, 2, 3\], got \[4\]"):
        adipocyte_pairs(samples, [1, 4])
    partial = [dict(sample) for sample in samples[:2]]
    del partial[1]["C02"]
    with pytest.raises(LayoutError, match=f"targets missing for 1 sample.*20x/{partial[1]['id']}: C02"):
        adipocyte_pairs(partial, [2])
    assert len(adipocyte_pairs(partial, [2], targets=False)) == 2


def test_channels_are_written_under_the_challenge_names_as_16_bit(tmp_path):
    pred = torch.tensor([[[-3.0, 1.4], [2.6, 70000.0]], [[0.5, 1.5], [65534.6, 7.0]]])
    item = {"pred": pred, "channels": [torch.tensor(1), torch.tensor(3)], "magnification": torch.tensor(60), "id": "P_"}
    writer = SaveChannelsd("pred", str(tmp_path), "{magnification}x_images/{id}A{channel:02d}Z01C{channel:02d}.tif")
    written = writer(item)["pred_paths"]
    assert written == [str(tmp_path / "60x_images" / f"P_A0{c}Z01C0{c}.tif") for c in (1, 3)]
    first, second = (read_image(path) for path in written)
    assert first.dtype == np.uint16 and first.tolist() == [[0, 1], [3, 65535]]  # rounded, clipped, never wrapped
    assert second.tolist() == [[0, 2], [65535, 7]]  # round half to even, as NumPy
    with pytest.raises(FileExistsError, match="P_A01Z01C01.tif"):
        writer(item)
    with pytest.raises(KeyError, match="no entry 'well'"):
        SaveChannelsd("pred", str(tmp_path), "{well}_{channel}.tif")(item)
    # an engine's output (as a deployment writer gets it) carries the fields in the prediction's meta data only
    meta = {"channels": [2], "magnification": 20, "id": "Q_"}
    written = writer({"pred": MetaTensor(torch.full((1, 2, 2), 9.0), meta=meta)})["pred_paths"]
    assert written == [str(tmp_path / "20x_images" / "Q_A02Z01C02.tif")] and read_image(written[0]).max() == 9
    with pytest.raises(ValueError, match="2 channels but channels names 1"):
        SaveChannelsd("pred", str(tmp_path), "{channel}.tif")({**item, "channels": [1]})
