"""Drawing one slice and one target per LMC sample, and stacking targets into channels with NaN for the absent."""

from collections import Counter

import pytest
import torch
from monai.data import list_data_collate

from common.io import LMC_ORGANELLES, lmc_slices
from common.transforms import ConcatChannelsd, RandSliceAndTargetd


def item(organelles=("Nucleus", "Actin"), planes=3):
    paths = {name: f"s/image_1_{name}.ome.tiff" for name in organelles}
    return {
        "inputs": [f"s/image_1_BF_z{k}.ome.tiff" for k in range(planes)],
        "z": list(range(planes)),
        "modality": "BF",
        "targets": paths,
        "organelles": sorted(paths),
        "study": 1,
        "id": "Study_1/image_1",
        **paths,
    }


def test_draws_one_slice_and_one_present_target_and_leaves_a_batchable_item():
    sampler = RandSliceAndTargetd(LMC_ORGANELLES).set_random_state(0)
    out = sampler(item())
    present = [key for key in LMC_ORGANELLES if key in out]
    assert len(present) == 1 and present[0] in ("Nucleus", "Actin")
    assert out["image"] == f"s/image_1_BF_z{out['z']}.ome.tiff"
    assert not {"inputs", "targets", "organelles"} & set(out)
    batch = list_data_collate([sampler(item(("Nucleus",))) for _ in range(3)])
    assert len(batch["image"]) == 3 and batch["z"].shape == (3,)


def test_every_slice_and_target_is_drawn_about_equally_and_a_seed_repeats_the_draws():
    draws = [RandSliceAndTargetd(LMC_ORGANELLES).set_random_state(5)(item()) for _ in range(2)]
    assert draws[0] == draws[1]
    sampler = RandSliceAndTargetd(LMC_ORGANELLES).set_random_state(1)
    outs = [sampler(item()) for _ in range(600)]
    slices = Counter(out["z"] for out in outs)
    targets = Counter(next(key for key in LMC_ORGANELLES if key in out) for out in outs)
    assert set(slices) == {0, 1, 2} and min(slices.values()) > 150
    assert set(targets) == {"Nucleus", "Actin"} and min(targets.values()) > 250


def test_restricting_the_targets_and_its_error():
    sampler = RandSliceAndTargetd(LMC_ORGANELLES, targets=["Actin"]).set_random_state(0)
    assert all("Actin" in sampler(item()) and "Nucleus" not in sampler(item()) for _ in range(20))
    with pytest.raises(ValueError, match=r"Study_1/image_1: no target to draw, none of its targets is among \['Act"):
        sampler(item(("Nucleus",)))
    with pytest.raises(KeyError, match="'inputs'"):
        sampler({"id": "x", "Actin": "a.tif"})


def test_concat_channels_puts_each_target_in_its_channel_and_nan_elsewhere():
    data = {"Mitochondria": torch.full((1, 5, 6), 2.0), "Actin": torch.full((1, 5, 6), 4.0), "id": "x"}
    out = ConcatChannelsd(LMC_ORGANELLES)(data)
    label = out["label"]
    assert label.shape == (4, 5, 6) and "Actin" not in out and "Mitochondria" not in out
    assert torch.isnan(label[[0, 2]]).all()  # Nucleus, Tubulin absent
    assert (label[1] == 2.0).all() and (label[3] == 4.0).all()
    with pytest.raises(ValueError, match="one size"):
        ConcatChannelsd(LMC_ORGANELLES)({"Nucleus": torch.zeros(1, 5, 6), "Actin": torch.zeros(1, 5, 7)})
    with pytest.raises(KeyError, match="x: none of the target keys"):
        ConcatChannelsd(LMC_ORGANELLES)({"id": "x"})


def test_lmc_slices_gives_one_batchable_item_per_slice_or_the_middle_one():
    items = [item(planes=3), item(planes=4)]
    every = lmc_slices(items)
    assert [entry["z"] for entry in every] == [0, 1, 2, 0, 1, 2, 3]
    assert [entry["z"] for entry in lmc_slices(items, "middle")] == [1, 1]
    assert every[2]["image"].endswith("z2.ome.tiff") and every[2]["Actin"] == items[0]["Actin"]
    assert not {"inputs", "targets", "organelles"} & set(every[0])
    assert "z_offset" not in every[0]  # items without a best focal plane
    focused = lmc_slices([{**items[1], "best_z": 3}])
    assert [(entry["z"], entry["z_offset"], entry["best_z"]) for entry in focused] == [
        (0, 3, 3),
        (1, 2, 3),
        (2, 1, 3),
        (3, 0, 3),
    ]
    with pytest.raises(ValueError, match="'all' or 'middle'"):
        lmc_slices(items, "best")
