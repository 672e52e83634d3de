"""Instance labels (common.io.labels); DSB 2018, BBBC039 and NeurIPS datalists (common.io.segmentation_layouts)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from monai.transforms import Compose, LoadImaged
from PIL import Image
from skimage.measure import label as skimage_label

from common.io.datalist import build_datalist
from common.io.errors import ImageFileError, LayoutError
from common.io.images import MicroscopyReader, read_image, write_image
from common.io.labels import LoadInstanceLabels, LoadInstanceLabelsd, read_instance_labels
from common.io.segmentation_layouts import bbbc039_datalist, dsb2018_datalist, neurips_datalist

H, W = 12, 16


def match(path) -> str:
    return re.escape(str(path))


def save_png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return str(path)


def square(top: int, left: int, size: int = 4) -> np.ndarray:
    """``(H, W)`` uint8 mask, 255 inside a ``size`` square at (top, left)."""
    mask = np.zeros((H, W), np.uint8)
    mask[top : top + size, left : left + size] = 255
    return mask


# ----------------------------------------------------------------------------------------------- labels


def test_mask_files_become_ids_in_file_order(tmp_path):
    paths = [save_png(tmp_path / f"m{k}.png", square(1 + 5 * k, 2 + 3 * k)) for k in range(2)]
    labels = read_instance_labels(paths)
    assert labels.dtype == np.int32 and labels.shape == (H, W)
    assert labels[1, 2] == 1 and labels[6, 5] == 2 and labels[0, 0] == 0
    assert (labels == 1).sum() == 16 and (labels == 2).sum() == 16


def test_overlapping_masks_name_both_files_or_last_wins(tmp_path):
    first = save_png(tmp_path / "first.png", square(0, 0))
    second = save_png(tmp_path / "second.png", square(2, 2))
    with pytest.raises(ImageFileError, match=rf"{match(second)}.*{match(first)}"):
        read_instance_labels([first, second])
    assert read_instance_labels([first, second], on_overlap="last")[3, 3] == 2


def test_mask_of_other_size_and_colour_mask_are_named(tmp_path):
    good = save_png(tmp_path / "good.png", square(0, 0))
    small = save_png(tmp_path / "small.png", np.zeros((H, W - 1), np.uint8))
    colour = save_png(tmp_path / "colour.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ImageFileError, match=match(small)):
        read_instance_labels([good, small])
    with pytest.raises(ImageFileError, match=match(colour)):
        read_instance_labels([good, colour])


def test_colour_coded_touching_objects_split_and_same_colour_apart_split(tmp_path):
    colours = np.zeros((H, W, 3), np.uint8)
    colours[2:6, 2:6] = (255, 0, 0)  # two touching 4x4 squares, red and green
    colours[2:6, 6:10] = (0, 255, 0)
    colours[8:11, 1:4] = (255, 0, 0)  # a second red object, apart
    colours[6:8, 6:8] = (255, 0, 0)  # a third red object touching the first only at a corner: kept apart
    labels = read_instance_labels(save_png(tmp_path / "bbbc.png", colours))
    assert labels.max() == 4
    sizes = sorted(np.bincount(labels.ravel())[1:].tolist())
    assert sizes == [4, 9, 16, 16]
    assert len({labels[3, 3], labels[3, 7], labels[9, 2], labels[7, 7]}) == 4


def test_colour_coded_8_connected_as_the_dsb_original_label_of_the_red_channel(tmp_path):
    colours = np.zeros((H, W, 3), np.uint8)
    colours[2:6, 2:6] = (200, 0, 0)
    colours[6:8, 6:8] = (200, 0, 0)  # meets the first square at one corner only
    colours[2:6, 6:10] = (90, 0, 0)  # edge to edge with the first square, another red value
    path = save_png(tmp_path / "bbbc.png", colours)
    eight = LoadInstanceLabelsd(keys="label", connectivity=2)({"label": path})["label"][0].numpy()
    reference = skimage_label(colours[..., 0], background=0)  # skimage's default connectivity in 2-D: 8
    assert eight.max() == reference.max() == 2
    assert np.array_equal(eight, reference)  # both number components in raster order
    assert read_instance_labels(path).max() == 3  # the default, 4-connected, keeps the corner square apart
    with pytest.raises(ValueError, match="connectivity"):
        LoadInstanceLabelsd(keys="label", connectivity=8)


def test_colour_coded_rgba_alpha_zero_is_background(tmp_path):
    colours = np.zeros((H, W, 4), np.uint8)
    colours[1:4, 1:4] = (10, 20, 30, 255)
    colours[6:9, 6:9] = (10, 20, 30, 0)
    labels = read_instance_labels(save_png(tmp_path / "rgba.png", colours))
    assert labels.max() == 1 and (labels > 0).sum() == 9


def test_colour_coded_same_channel_zero_different_colours_are_different(tmp_path):
    colours = np.zeros((H, W, 3), np.uint8)
    colours[2:6, 2:6] = (7, 1, 0)  # would collide if channels were summed instead of encoded
    colours[2:6, 6:10] = (7, 0, 1)
    assert read_instance_labels(save_png(tmp_path / "c.png", colours)).max() == 2


@pytest.mark.parametrize("name, dtype", [("ids.tif", np.uint32), ("ids.tif", np.uint16), ("ids.png", np.uint16)])
def test_grey_label_image_round_trip_keeps_ids(tmp_path, name, dtype):
    ids = np.zeros((H, W), dtype)
    ids[1:3, 1:3], ids[5:9, 5:9] = 7, 65535 if dtype != np.uint32 else 3_000_000
    write_image(tmp_path / name, ids)
    labels = read_instance_labels(tmp_path / name)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, ids.astype(np.int32))


def test_grey_label_errors_name_the_file(tmp_path):
    cases = {
        "fraction.tif": np.full((H, W), 1.5, np.float32),
        "huge.tif": np.full((H, W), 2**31, np.uint32),
        "negative.tif": np.full((H, W), -1, np.int16),
    }
    for name, array in cases.items():
        tifffile.imwrite(tmp_path / name, array)
        with pytest.raises(ImageFileError, match=match(tmp_path / name)):
            read_instance_labels(tmp_path / name)
    tifffile.imwrite(tmp_path / "whole.tif", np.full((H, W), 4.0, np.float32))
    assert read_instance_labels(tmp_path / "whole.tif").max() == 4


def test_load_instance_labels_gives_channel_first_int32_metatensor(tmp_path):
    paths = [save_png(tmp_path / "masks" / f"m{k}.png", square(1 + 5 * k, 2)) for k in range(2)]
    labels = LoadInstanceLabels()(paths)
    assert labels.shape == (1, H, W) and labels.dtype == torch.int32
    assert labels.meta["filename_or_obj"] == str(tmp_path / "masks")
    assert list(labels.meta["spatial_shape"]) == [H, W]
    data = LoadInstanceLabelsd(keys=["label", "other"], allow_missing_keys=True)({"label": paths, "id": "x"})
    assert torch.equal(data["label"], labels) and data["id"] == "x"
    with pytest.raises(KeyError):
        LoadInstanceLabelsd(keys="other")({"label": paths})


# ----------------------------------------------------------------------------------------------- DSB 2018


def make_dsb2018(root: Path, ids=("b2", "a1"), stage="stage1_train", masks=2) -> Path:
    """A DSB 2018 stage with RGBA images and ``masks`` binary masks per sample."""
    for sample in ids:
        folder = root / stage / sample
        save_png(folder / "images" / f"{sample}.png", np.full((H, W, 4), 200, np.uint8))
        for k in range(masks):
            save_png(folder / "masks" / f"mask{k:02d}.png", square(1 + 5 * k, 2 + 3 * k))
    return root


def test_dsb2018_items_sorted_with_sorted_mask_lists(tmp_path):
    root = make_dsb2018(tmp_path)
    items = dsb2018_datalist(root)
    assert [item["id"] for item in items] == ["a1", "b2"]
    assert items[0]["image"] == str(root / "stage1_train" / "a1" / "images" / "a1.png")
    assert items[0]["label"] == [str(root / "stage1_train" / "a1" / "masks" / f"mask{k:02d}.png") for k in range(2)]
    assert dsb2018_datalist(root / "stage1_train") == items  # the stage folder itself
    assert build_datalist("dsb2018", str(root)) == items


def test_dsb2018_errors_name_the_folder(tmp_path):
    with pytest.raises(LayoutError, match=match(tmp_path / "stage1_train")):
        dsb2018_datalist(tmp_path)
    root = make_dsb2018(tmp_path / "nomask", masks=0)
    with pytest.raises(LayoutError, match=match(root / "stage1_train" / "a1" / "masks")):
        dsb2018_datalist(root)
    root = make_dsb2018(tmp_path / "noimage")
    (root / "stage1_train" / "b2" / "images" / "b2.png").unlink()
    with pytest.raises(LayoutError, match=match(root / "stage1_train" / "b2")):
        dsb2018_datalist(root)


def test_dsb2018_test_stage_without_masks(tmp_path):
    root = make_dsb2018(tmp_path, stage="stage1_test", masks=0)
    items = dsb2018_datalist(root, stage="stage1_test", require_labels=False)
    assert [sorted(item) for item in items] == [["id", "image"], ["id", "image"]]


def test_dsb2018_item_loads_as_image_and_labels(tmp_path):
    item = dsb2018_datalist(make_dsb2018(tmp_path))[0]
    load = Compose([
        LoadImaged(keys="image", reader=MicroscopyReader(), ensure_channel_first=True),
        LoadInstanceLabelsd(keys="label"),
    ])  # fmt: skip
    data = load(item)
    assert data["image"].shape == (4, H, W) and data["label"].shape == (1, H, W)
    assert data["label"].max() == 2


# ----------------------------------------------------------------------------------------------- BBBC039


def make_bbbc039(root: Path, splits=None) -> Path:
    """BBBC039: 16-bit TIFF images, colour-coded PNG masks, metadata/<split>.txt listing mask names."""
    if splits is None:
        splits = {"training": ["n2", "n1"], "validation": ["n3"], "test": ["n4"]}
    (root / "metadata").mkdir(parents=True)
    colours = np.zeros((H, W, 3), np.uint8)
    colours[1:5, 1:5], colours[1:5, 5:9] = (255, 0, 0), (0, 0, 255)
    for split, names in splits.items():
        (root / "metadata" / f"{split}.txt").write_text("".join(f"{name}.png\n" for name in names))
        for name in names:
            write_image(root / "images" / f"{name}.tif", np.full((H, W), 4000, np.uint16), ome=False)
            save_png(root / "masks" / f"{name}.png", colours)
    return root


def test_bbbc039_splits(tmp_path):
    root = make_bbbc039(tmp_path)
    items = bbbc039_datalist(root, "training")
    assert items == [
        {"image": str(root / "images" / f"{n}.tif"), "label": str(root / "masks" / f"{n}.png"), "id": n}
        for n in ("n1", "n2")
    ]
    assert [item["id"] for item in bbbc039_datalist(root, "test")] == ["n4"]
    assert [item["id"] for item in bbbc039_datalist(root, None)] == ["n1", "n2", "n3", "n4"]
    assert build_datalist("bbbc039", str(root), split="validation")[0]["id"] == "n3"


def test_bbbc039_errors(tmp_path):
    root = make_bbbc039(tmp_path)
    with pytest.raises(ValueError, match="train"):
        bbbc039_datalist(root, "train")
    (root / "metadata" / "test.txt").unlink()
    with pytest.raises(LayoutError, match=match(root / "metadata" / "test.txt")):
        bbbc039_datalist(root, "test")
    (root / "masks" / "n3.png").unlink()
    with pytest.raises(LayoutError, match=match(root / "masks" / "n3.png")):
        bbbc039_datalist(root, "validation")
    with pytest.raises(LayoutError, match=match(tmp_path / "absent")):
        bbbc039_datalist(tmp_path / "absent")


def test_bbbc039_item_loads_with_two_touching_nuclei(tmp_path):
    item = bbbc039_datalist(make_bbbc039(tmp_path))[0]
    data = Compose([
        LoadImaged(keys="image", reader=MicroscopyReader(), ensure_channel_first=True, dtype=None),
        LoadInstanceLabelsd(keys="label"),
    ])(item)  # fmt: skip
    assert data["image"].shape == (1, H, W) and int(data["image"].max()) == 4000
    assert data["label"].max() == 2 and data["label"][0, 2, 4] != data["label"][0, 2, 5]


# ----------------------------------------------------------------------------------------------- NeurIPS


def make_neurips(root: Path, suffixes=(".png", ".tif", ".bmp")) -> Path:
    """NeurIPS 2022: RGB images of mixed formats, ``labels/<name>_label.tiff`` with one object of id = index."""
    for index, suffix in enumerate(suffixes, start=1):
        name = f"cell_{index:05d}"
        image = np.full((H, W, 3), 50, np.uint8)
        if suffix == ".tif":
            write_image(root / "images" / f"{name}{suffix}", image)
        else:
            save_png(root / "images" / f"{name}{suffix}", image)
        ids = np.zeros((H, W), np.uint16)
        ids[2:5, 2:5] = index
        write_image(root / "labels" / f"{name}_label.tiff", ids)
    return root


def test_neurips_items_across_image_formats(tmp_path):
    root = make_neurips(tmp_path)
    items = neurips_datalist(root)
    assert [item["id"] for item in items] == ["cell_00001", "cell_00002", "cell_00003"]
    assert items[1] == {
        "image": str(root / "images" / "cell_00002.tif"),
        "label": str(root / "labels" / "cell_00002_label.tiff"),
        "id": "cell_00002",
    }
    assert build_datalist("neurips", str(root)) == items
    load = Compose([
        LoadImaged(keys="image", reader=MicroscopyReader(), ensure_channel_first=True),
        LoadInstanceLabelsd(keys="label"),
    ])  # fmt: skip
    for index, item in enumerate(items, start=1):
        data = load(item)
        assert data["image"].shape == (3, H, W) and data["label"].max() == index


def test_neurips_missing_label_is_named_unless_optional(tmp_path):
    root = make_neurips(tmp_path)
    (root / "labels" / "cell_00002_label.tiff").unlink()
    with pytest.raises(LayoutError, match=match(root / "labels" / "cell_00002_label.tiff")):
        neurips_datalist(root)
    items = neurips_datalist(root, require_labels=False)
    assert ["label" in item for item in items] == [True, False, True]
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(LayoutError, match=match(tmp_path / "empty" / "images")):
        neurips_datalist(tmp_path / "empty")


def test_neurips_shared_folder_naming_like_cellpose(tmp_path):
    for index in range(2):
        save_png(tmp_path / "train" / f"{index:03d}_img.png", np.zeros((H, W), np.uint8))
        save_png(tmp_path / "train" / f"{index:03d}_masks.png", np.zeros((H, W), np.uint8))
    items = neurips_datalist(
        tmp_path, image_dir="train", label_dir="train", image_suffix="_img", label_suffix="_masks", label_ext=".png"
    )
    assert [item["id"] for item in items] == ["000", "001"]
    assert [Path(item["label"]).name for item in items] == ["000_masks.png", "001_masks.png"]


# ----------------------------------------------------------------------------------------------- bundle config


@pytest.mark.parametrize("reader", ["common.io.images.MicroscopyReader", "$common.io.images.MicroscopyReader()"])
def test_bundle_config_builds_datalist_and_loads_it(tmp_path, reader):
    from monai.bundle import ConfigParser

    parser = ConfigParser({
        "imports": ["$import common"],  # binds `common`; its submodules are imported by this test module
        "dataset_dir": str(make_dsb2018(tmp_path)),
        "datalist": "$common.io.segmentation_layouts.dsb2018_datalist(@dataset_dir)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image", "reader": reader, "ensure_channel_first": True},
                {"_target_": "common.io.labels.LoadInstanceLabelsd", "keys": "label"},
            ],
        },
    })  # fmt: skip
    data = parser.get_parsed_content("preprocessing")(parser.get_parsed_content("datalist")[1])
    assert data["image"].shape == (4, H, W) and data["label"].shape == (1, H, W) and data["id"] == "b2"


# ----------------------------------------------------------------------------------------------- synthetic data


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """DSB 2018, BBBC039 and NeurIPS datasets written by ``common.data.synthetic`` (small images)."""
    synthetic = pytest.importorskip("common.data.synthetic")
    root = tmp_path_factory.mktemp("synthetic")
    for layout, n in (("dsb2018", 3), ("bbbc039", 4), ("neurips", 6)):
        synthetic.write_dataset(layout, root / layout, n=n, size=128, seed=3)
    return root


def load_item(item: dict) -> dict:
    return Compose([
        LoadImaged(keys="image", reader=MicroscopyReader(), ensure_channel_first=True, dtype=None),
        LoadInstanceLabelsd(keys="label"),
    ])(item)  # fmt: skip


def touching_pairs(labels: np.ndarray) -> int:
    """Number of 4-adjacent pixel pairs with two different non-zero ids."""
    pairs = 0
    for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
        pairs += int(((a != b) & (a > 0) & (b > 0)).sum())
    return pairs


def test_synthetic_dsb2018_every_item_loads_one_id_per_mask_file(synthetic_root):
    items = dsb2018_datalist(synthetic_root / "dsb2018")
    assert len(items) == 3
    for item in items:
        data = load_item(item)
        labels = data["label"][0].numpy()
        assert data["image"].shape[0] == 4 and data["image"].shape[1:] == data["label"].shape[1:]
        assert labels.max() == len(item["label"])
        for index, mask_file in enumerate(item["label"], start=1):
            np.testing.assert_array_equal(labels == index, read_image(mask_file) > 0)


def test_synthetic_bbbc039_splits_partition_and_touching_nuclei_split(synthetic_root):
    from skimage.measure import label as connected

    root = synthetic_root / "bbbc039"
    splits = {split: bbbc039_datalist(root, split) for split in ("training", "validation", "test")}
    ids = sorted(item["id"] for items in splits.values() for item in items)
    assert ids == [item["id"] for item in bbbc039_datalist(root, None)] and len(ids) == 4
    pairs = 0
    for item in bbbc039_datalist(root, None):
        data = load_item(item)
        labels = data["label"][0].numpy()
        assert data["image"].shape == (1, 128, round(128 * 696 / 520)) and data["image"].shape == data["label"].shape
        colours = read_image(item["label"]).astype(np.int64)
        codes = (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]
        assert labels.max() == connected(codes, background=0, connectivity=2).max()  # no object cut by 4-connectivity
        pairs += touching_pairs(labels)
    assert pairs > 0  # the data has touching nuclei, and they came out as different ids


def test_synthetic_neurips_every_modality_loads(synthetic_root):
    items = neurips_datalist(synthetic_root / "neurips")
    assert len(items) == 6 and {Path(item["image"]).suffix for item in items} == {".png", ".bmp", ".tif"}
    channels = []
    for item in items:
        data = load_item(item)
        assert data["image"].shape[1:] == data["label"].shape[1:] == (128, 128)
        np.testing.assert_array_equal(data["label"][0].numpy(), read_image(item["label"]).astype(np.int32))
        channels.append(data["image"].shape[0])
    assert channels == [1, 3, 1, 4, 3, 1]
