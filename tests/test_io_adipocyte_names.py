"""The adipocyte bundle's split parts by name and its model file names."""

import pytest

from common.io import adipocyte_model_name, adipocyte_split, adipocyte_split_part


def items(count: int) -> list[dict]:
    return [{"magnification": 20, "id": f"field{index:02d}"} for index in range(count)]


def test_split_parts_by_name_are_those_of_adipocyte_split():
    samples = items(30)
    parts = adipocyte_split(samples, seed=7)
    assert [adipocyte_split_part(samples, name, seed=7) for name in ("training", "validation", "test")] == list(parts)
    assert adipocyte_split_part(samples, "test", seed=7) != adipocyte_split_part(samples, "test", seed=8)
    with pytest.raises(ValueError, match="split: expected one of .*'training'.*got 'val'"):
        adipocyte_split_part(samples, "val")


def test_model_names_are_the_last_epoch_and_best_ssim_files():
    assert adipocyte_model_name().format(magnification=40, channel=2) == "model_40x_c02.pt"
    assert adipocyte_model_name(best_ssim=True).format(magnification=20, channel=1) == "model_20x_c01_best_ssim.pt"
