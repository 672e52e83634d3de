"""Datalists of LIVECell, Light My Cells and the adipocyte challenge, on small folders in their real layouts."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile

from common.io.challenge_layouts import (
    adipocyte_datalist,
    adipocyte_split,
    livecell_datalist,
    lmc_channels,
    lmc_datalist,
    lmc_output_folders,
    lmc_split,
    read_lmc_best_z,
)
from common.io.coco import CocoPolygonsToMaskd
from common.io.datalist import build_datalist
from common.io.errors import DataError, LayoutError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def square(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


# ----------------------------------------------------------------------------------------------- LIVECell

A172 = "A172_Phase_A7_1_00d00h00m_1.tif"
BV2 = "BV2_Phase_D4_2_01d12h00m_3.tif"
SKOV3 = "SKOV3_Phase_H4_1_03d00h00m_4.tif"
SHSY5Y = "SHSY5Y_Phase_B10_1_00d04h00m_2.tif"  # listed in the JSON without annotations


def livecell_coco(keyed: bool) -> dict:
    names = [BV2, A172, SKOV3, SHSY5Y]
    images = [{"id": 100 + i, "file_name": name, "width": 32, "height": 24} for i, name in enumerate(names)]
    segmentations = {  # image id -> segmentations, stored out of id order on purpose
        101: [[square(0, 0, 4, 4)], [square(10, 10, 20, 16)]],
        100: [[square(2, 2, 6, 6), square(8, 8, 9, 9)]],
        102: [[square(0, 20, 32, 24)]],
    }
    annotations, next_id = [], 1000
    for image_id in (102, 101, 100):
        for segmentation in segmentations[image_id]:
            annotations.append({"id": next_id, "image_id": image_id, "segmentation": segmentation, "category_id": 1})
            next_id -= 1
    if keyed:
        annotations = {str(annotation["id"]): annotation for annotation in annotations}
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]}


def livecell_root(root: Path, keyed: bool = True, nested_test: bool = False) -> Path:
    for name in (A172, BV2, SKOV3, SHSY5Y):
        touch(root / "images" / "livecell_train_val_images" / name)
        cell_folder = name.split("_")[0] + "/" if nested_test else ""
        touch(root / "images" / "livecell_test_images" / f"{cell_folder}{name}")
    for split in ("train", "val", "test"):
        (root / f"livecell_coco_{split}.json").write_text(json.dumps(livecell_coco(keyed)))
    return root


def quiet_livecell(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return livecell_datalist(*args, **kwargs)


def test_livecell_items(tmp_path):
    items = quiet_livecell(livecell_root(tmp_path))
    assert [item["id"] for item in items] == [Path(name).stem for name in sorted([A172, BV2, SKOV3])]
    a172 = items[0]
    assert a172 == {
        "image": str(tmp_path / "images" / "livecell_train_val_images" / A172),
        "polygons": [[square(10, 10, 20, 16)], [square(0, 0, 4, 4)]],  # ascending annotation id
        "height": 24,
        "width": 32,
        "cell_type": "A172",
        "id": "A172_Phase_A7_1_00d00h00m_1",
    }
    assert [item["cell_type"] for item in items] == ["A172", "BV2", "SKOV3"]
    assert all(isinstance(item["image"], str) for item in items)


def test_livecell_keyed_and_listed_annotations_give_the_same_datalist(tmp_path):
    keyed = quiet_livecell(livecell_root(tmp_path / "keyed", keyed=True))
    listed = quiet_livecell(livecell_root(tmp_path / "listed", keyed=False))
    assert [{**item, "image": Path(item["image"]).name} for item in keyed] == [
        {**item, "image": Path(item["image"]).name} for item in listed
    ]


def test_livecell_image_without_annotations_is_skipped_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"skipped 1 image\(s\) without annotations: " + SHSY5Y):
        items = livecell_datalist(livecell_root(tmp_path), split="val")
    assert "SHSY5Y" not in {item["cell_type"] for item in items} and len(items) == 3


def test_livecell_test_split_nested_by_cell_type(tmp_path):
    items = quiet_livecell(livecell_root(tmp_path, nested_test=True), split="test")
    assert [Path(item["image"]).relative_to(tmp_path).as_posix() for item in items] == [
        f"images/livecell_test_images/{name.split('_')[0]}/{name}" for name in sorted([A172, BV2, SKOV3])
    ]


def test_livecell_image_missing_on_disk_is_named(tmp_path):
    root = livecell_root(tmp_path)
    (root / "images" / "livecell_train_val_images" / BV2).unlink()
    with pytest.raises(LayoutError, match=f"not found on disk: {BV2}"):
        quiet_livecell(root)


def test_livecell_exclude_list_drops_the_named_images(tmp_path):
    root = livecell_root(tmp_path)
    exclude = root / "exclude.txt"
    exclude.write_text(f"# duplicates and train/val overlaps\n{A172}\n\n{Path(SKOV3).stem}  # without suffix\n")
    items = quiet_livecell(root, exclude=exclude)
    assert [item["id"] for item in items] == [Path(BV2).stem]


def test_livecell_annotation_file_is_configurable(tmp_path):
    root = livecell_root(tmp_path)
    (root / "annotations").mkdir()
    (root / "livecell_coco_train.json").rename(root / "annotations" / "train.json")
    with pytest.raises(LayoutError, match="livecell_coco_train.json"):
        quiet_livecell(root)
    assert len(quiet_livecell(root, annotation_file="annotations/train.json")) == 3


def test_livecell_layout_errors(tmp_path):
    with pytest.raises(LayoutError, match="LIVECell dataset folder not found"):
        livecell_datalist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        livecell_datalist(tmp_path, split="all")
    root = livecell_root(tmp_path / "data")
    content = livecell_coco(keyed=True)
    content["images"][1]["file_name"] = "a172_image_1.tif"
    (root / "livecell_coco_train.json").write_text(json.dumps(content))
    touch(root / "images" / "livecell_train_val_images" / "a172_image_1.tif")
    with pytest.raises(LayoutError, match="not of the form .*a172_image_1.tif"):
        quiet_livecell(root)
    (root / "livecell_coco_val.json").write_text("not json")
    with pytest.raises(DataError, match="livecell_coco_val.json"):
        quiet_livecell(root, split="val")


def test_livecell_items_through_the_dispatcher_and_mask_transform(tmp_path):
    items = quiet_livecell(livecell_root(tmp_path))
    assert quiet_livecell_build(tmp_path) == items
    assert quiet_livecell(tmp_path, split="training") == items  # the project's split names work too
    masked = CocoPolygonsToMaskd(keys="polygons", mask_keys="label")(items[0])
    assert masked["label"].shape == (1, 24, 32) and masked["label"].sum() == 16 + 60


def published_livecell(root: Path) -> Path:
    """A LIVECell folder as Sartorius distributes it: images listed with their extra fields, annotations keyed by
    id (as strings), a cell in two parts, one with a hole (keyhole polygon), an image without annotations."""
    names = [A172, BV2, SHSY5Y]
    images = [
        {"id": 1 + i, "file_name": name, "original_filename": name.replace(".tif", ".png"), "width": 12,
         "height": 10, "url": "", "date_captured": "2021-01-01", "license": 1}
        for i, name in enumerate(names)
    ]  # fmt: skip
    keyhole = [1, 1, 9, 1, 9, 9, 1, 9, 1, 5, 3, 5, 3, 6, 6, 6, 6, 3, 3, 3, 3, 5, 1, 5]
    segmentations = {
        1: [[keyhole], [square(10, 0, 12, 2), square(10, 8, 12, 10)]],  # ring with a hole; two parts at the border
        2: [[square(0, 0, 2.4, 10)]],
    }
    annotations, next_id = {}, 2000
    for image_id, cells in segmentations.items():
        for segmentation in cells:
            annotations[str(next_id)] = {"id": next_id, "image_id": image_id, "segmentation": segmentation,
                                         "area": 0.0, "bbox": [0, 0, 1, 1], "iscrowd": 0, "category_id": 1}  # fmt: skip
            next_id += 1
    content = {"info": {"version": "1.0"}, "licenses": [], "images": images, "annotations": annotations,
               "categories": [{"supercategory": "cell", "id": 1, "name": "cell"}]}  # fmt: skip
    for name in names:
        touch(root / "images" / "livecell_train_val_images" / name)
    (root / "livecell_coco_train.json").write_text(json.dumps(content))
    return root


def test_livecell_published_form_gives_items_and_masks(tmp_path):
    root = published_livecell(tmp_path)
    with pytest.warns(UserWarning, match=f"livecell_coco_train.json: skipped 1 image.*{SHSY5Y}"):
        items = livecell_datalist(root)
    assert [(item["id"], item["cell_type"], len(item["polygons"])) for item in items] == [
        (Path(A172).stem, "A172", 2),
        (Path(BV2).stem, "BV2", 1),
    ]
    masks = [CocoPolygonsToMaskd(keys="polygons", mask_keys="label")(item)["label"][0] for item in items]
    ring = np.zeros((10, 12), np.uint8)
    ring[1:9, 1:9] = 1
    ring[3:6, 3:6] = 0
    ring[0:2, 10:12] = ring[8:10, 10:12] = 1
    np.testing.assert_array_equal(masks[0], ring)
    band = np.zeros((10, 12), np.uint8)
    band[:, 0:2] = 1  # x up to 2.4: the columns whose centres (0.5, 1.5) lie inside
    np.testing.assert_array_equal(masks[1], band)


def test_livecell_missing_image_in_a_nested_test_folder_is_named(tmp_path):
    root = livecell_root(tmp_path, nested_test=True)
    (root / "images" / "livecell_test_images" / "SKOV3" / SKOV3).unlink()
    with pytest.raises(LayoutError, match=f"livecell_coco_test.json: 1 annotated image.*not found on disk: {SKOV3}"):
        quiet_livecell(root, split="test")


def quiet_livecell_build(root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_datalist("livecell", str(root), split="train")


# ------------------------------------------------------------------------------------------ Light My Cells


def lmc_root(root: Path) -> Path:
    files = {
        "Study_2": ["image_1_BF_z0", "image_1_BF_z2", "image_1_BF_z10", "image_1_Nucleus", "image_1_Mitochondria",
                    "image_3_PC_z1", "image_3_Actin", "image_3_Tubulin", "image_3_Nucleus"],
        "Study_11": ["image_40_DIC_z0", "image_40_Mitochondria"],
        "Study_10": ["image_7_BF_z4"],  # no targets: an inference image
    }  # fmt: skip
    for study, stems in files.items():
        for stem in stems:
            plane(root / study / f"{stem}.ome.tiff")
    touch(root / "Study_2" / "notes.txt")  # not a TIFF: ignored
    return root


def plane(path: Path, shape=(6, 5)) -> Path:
    """A small uint16 TIFF: the datalist reads every listed file's header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.arange(np.prod(shape), dtype=np.uint16).reshape(shape))
    return path


def test_lmc_items(tmp_path):
    root = lmc_root(tmp_path)
    items = lmc_datalist(root)
    expected_ids = ["Study_2/image_1", "Study_2/image_3", "Study_10/image_7", "Study_11/image_40"]
    assert [item["id"] for item in items] == expected_ids
    first = items[0]
    study = root / "Study_2"
    assert first["inputs"] == [str(study / f"image_1_BF_z{k}.ome.tiff") for k in (0, 2, 10)]  # numeric z order
    assert first["z"] == [0, 2, 10] and first["modality"] == "BF" and first["study"] == 2
    assert first["targets"] == {
        "Mitochondria": str(study / "image_1_Mitochondria.ome.tiff"),
        "Nucleus": str(study / "image_1_Nucleus.ome.tiff"),
    }
    assert first["organelles"] == ["Mitochondria", "Nucleus"]
    assert first["Nucleus"] == first["targets"]["Nucleus"] and "Actin" not in first and "Tubulin" not in first
    assert items[1]["organelles"] == ["Actin", "Nucleus", "Tubulin"] and items[1]["modality"] == "PC"
    assert items[2]["targets"] == {} and items[2]["organelles"] == []
    assert items[3]["modality"] == "DIC"


def test_lmc_excluded_studies_and_parent_root(tmp_path):
    lmc_root(tmp_path / "Orig_data")
    items = lmc_datalist(tmp_path, exclude_studies=(11,))
    assert [item["study"] for item in items] == [2, 2, 10]
    assert build_datalist("lmc", str(tmp_path / "Orig_data")) == lmc_datalist(tmp_path)


def test_lmc_layout_problems_are_listed_together(tmp_path):
    root = lmc_root(tmp_path)
    touch(root / "Study_2" / "image_5_Actin.ome.tiff")  # target without inputs
    touch(root / "Study_11" / "image_40_BF_z1.ome.tiff")  # mixed with DIC
    touch(root / "Study_10" / "image_7_brightfield.ome.tiff")  # not a layout name
    with pytest.raises(LayoutError) as error:
        lmc_datalist(root)
    message = str(error.value)
    assert "image_5: targets ['Actin'] without transmitted-light z-slices" in message
    assert "image_40: z-slices of mixed modalities ['BF', 'DIC']" in message
    assert "image_7_brightfield.ome.tiff: expected" in message


def test_lmc_damaged_files_are_all_named_before_any_is_read(tmp_path):
    root = lmc_root(tmp_path)
    study = root / "Study_2"
    touch(study / "image_1_BF_z2.ome.tiff")  # zero bytes: a slice of the middle, the one validation reads
    (study / "image_1_BF_z10.ome.tiff").write_bytes(b"II*\x00 garbage, not a TIFF directory")  # no config reads it
    with tifffile.TiffFile(study / "image_3_Tubulin.ome.tiff") as tiff:
        cut = tiff.pages[0].dataoffsets[0] + 10
    cut_short = (study / "image_3_Tubulin.ome.tiff").read_bytes()[:cut]
    (study / "image_3_Tubulin.ome.tiff").write_bytes(cut_short)  # an interrupted copy: ends inside the pixels
    plane(study / "image_3_Actin.ome.tiff", (6, 6))  # one column more than its slice
    plane(root / "Study_10" / "image_7_BF_z4.ome.tiff", (2, 6, 5))  # two planes in one file
    plane(root / "Study_11" / "image_40_Mitochondria.ome.tiff", (7, 5))
    with pytest.raises(LayoutError) as error:
        lmc_datalist(root, exclude_studies=(11,))  # an excluded study's files are not checked
    lines = str(error.value).splitlines()
    assert lines[0] == f"{root}: files not in the Light My Cells layout or not readable (5):"
    assert lines[1:] == [
        f"  {study / 'image_1_BF_z2.ome.tiff'}: empty file (0 bytes).",
        f"  {study / 'image_1_BF_z10.ome.tiff'}: no image in the TIFF, the file is corrupt or truncated.",
        f"  {study / 'image_3_Tubulin.ome.tiff'}: truncated, the image data end at byte {cut - 10 + 60} of a "
        f"{cut}-byte file.",
        f"  Study_2/image_3: slices and targets differ in size: {study / 'image_3_PC_z1.ome.tiff'} (6, 5), "
        f"{study / 'image_3_Actin.ome.tiff'} (6, 6)",
        f"  {root / 'Study_10' / 'image_7_BF_z4.ome.tiff'}: shape (6, 5, 2), expected one 2D plane (H, W)",
    ]
    (study / "image_1_BF_z10.ome.tiff").write_bytes(b"garbage")
    with pytest.raises(
        LayoutError,
        match=r"image_1_BF_z10.ome.tiff: cannot read the TIFF header, the file is "
        r"corrupt or truncated \(not a TIFF file",
    ):
        lmc_datalist(root, exclude_studies=(11,))


def test_lmc_best_z_is_the_middle_slice_or_read_from_the_evaluator_table(tmp_path):
    root = lmc_root(tmp_path)
    assert [item["best_z"] for item in lmc_datalist(root)] == [2, 1, 4, 0]  # middle of z0, z2, z10 is z2
    table = tmp_path / "best_z.csv"
    table.write_text(
        "name,modality,image_z,best_z\n"  # the challenge evaluator's columns, one row per slice
        "image_1_BF_z0.ome.tiff,BF,0,10\nimage_1_BF_z2.ome.tiff,BF,2,10\n"
        "image_3_PC_z1.ome.tiff,PC,1,3\nimage_7_BF_z4.ome.tiff,BF,4,4\n"
    )
    items = lmc_datalist(root, exclude_studies=(11,), best_z=table)
    assert [item["best_z"] for item in items] == [10, 3, 4]
    assert read_lmc_best_z(table)["image_3_PC_z1.ome.tiff"] == 3
    with pytest.raises(LayoutError, match="Study_11/image_40: no slice listed"):
        lmc_datalist(root, best_z=table)
    with pytest.raises(LayoutError, match=r"Study_2/image_1: slices give several best z \[1, 10\]"):
        lmc_datalist(root, exclude_studies=(11,), best_z={**read_lmc_best_z(table), "image_1_BF_z10.ome.tiff": 1})
    table.write_text("name,best_z\nimage_1_BF_z0.ome.tiff,two\n")
    with pytest.raises(LayoutError, match="best_z.csv, line 2: best_z 'two' is not an integer"):
        read_lmc_best_z(table)
    table.write_text("file,z\na,1\n")
    with pytest.raises(LayoutError, match="expected columns name and best_z"):
        read_lmc_best_z(table)
    with pytest.raises(LayoutError, match="absent.csv: best focal plane table not found"):
        read_lmc_best_z(tmp_path / "absent.csv")


def test_lmc_missing_or_empty_root(tmp_path):
    with pytest.raises(LayoutError, match="not found"):
        lmc_datalist(tmp_path / "absent")
    with pytest.raises(LayoutError, match="no Study_<n> folders"):
        lmc_datalist(tmp_path)
    (tmp_path / "Study_1").mkdir()
    with pytest.raises(LayoutError, match="no image found"):
        lmc_datalist(tmp_path)


def lmc_items(counts: dict[tuple[str, ...], int]) -> list[dict]:
    """Datalist-like items: ``count`` images for each set of organelles."""
    items, index = [], 0
    for organelles, count in counts.items():
        for _ in range(count):
            index += 1
            items.append({"id": f"Study_1/image_{index}", "organelles": sorted(organelles)})
    return items


def test_lmc_split_is_stratified_complete_and_deterministic():
    counts = {("Mitochondria", "Nucleus"): 40, ("Actin", "Nucleus"): 20, ("Nucleus", "Tubulin"): 12, ("Actin",): 10}
    items = lmc_items(counts)
    train, validation = lmc_split(items)
    assert sorted(item["id"] for item in train + validation) == sorted(item["id"] for item in items)
    assert not {item["id"] for item in train} & {item["id"] for item in validation}
    for organelles, count in counts.items():
        in_validation = sum(tuple(item["organelles"]) == tuple(sorted(organelles)) for item in validation)
        assert in_validation == round(0.1 * count) >= 1  # every set in both parts
    assert lmc_split(items) == (train, validation)
    assert lmc_split(items, seed=7) != (train, validation)


def test_lmc_split_keeps_the_images_with_a_target_without_redrawing_the_split():
    counts = {("Mitochondria", "Nucleus"): 40, ("Actin", "Nucleus"): 20, ("Nucleus", "Tubulin"): 12, ("Actin",): 10}
    items = lmc_items(counts)
    train, validation = lmc_split(items)
    actin_train, actin_validation = lmc_split(items, targets=["Actin"])
    assert actin_train == [item for item in train if "Actin" in item["organelles"]]  # the same split, filtered
    assert actin_validation == [item for item in validation if "Actin" in item["organelles"]]
    assert len(actin_train) + len(actin_validation) == 30
    assert lmc_split(items, targets=["Nucleus", "Actin"]) == (train, validation)  # every image has one of them


def test_lmc_channels_and_output_folders_follow_the_network_order():
    assert lmc_channels(["Actin", "Nucleus"]) == [3, 0]
    assert lmc_output_folders(["Nucleus", "Tubulin"]) == [
        "nucleus-fluorescence-ome-tiff",
        "tubulin-fluorescence-ome-tiff",
    ]
    with pytest.raises(ValueError, match=r"\['nucleus'\] are not LMC organelles"):
        lmc_output_folders(["nucleus"])


# ------------------------------------------------------------------------------------------------ Adipocyte

PLATE = "AssayPlate_Greiner_#655090"


def adipocyte_files(folder: Path, well: str, field: str, brightfield=range(1, 8), targets=(1, 2, 3)) -> str:
    prefix = f"{PLATE}_{well}_T0001F{field}L01"
    for z in brightfield:
        touch(folder / f"{prefix}A04Z{z:02d}C04.tif")
    for channel in targets:
        touch(folder / f"{prefix}A{channel:02d}Z01C{channel:02d}.tif")
    return prefix


def adipocyte_root(root: Path) -> Path:
    adipocyte_files(root / "40x_images", "D04", "006")
    adipocyte_files(root / "40x_images", "B03", "012")
    adipocyte_files(root / "20x_images", "B03", "001")
    return root


def test_adipocyte_items(tmp_path):
    items = adipocyte_datalist(adipocyte_root(tmp_path))
    assert [(item["magnification"], item["id"]) for item in items] == [
        (20, f"{PLATE}_B03_T0001F001L01"),
        (40, f"{PLATE}_B03_T0001F012L01"),
        (40, f"{PLATE}_D04_T0001F006L01"),
    ]
    item = items[2]
    folder = tmp_path / "40x_images"
    prefix = f"{PLATE}_D04_T0001F006L01"
    assert item == {
        "brightfield": [str(folder / f"{prefix}A04Z{z:02d}C04.tif") for z in range(1, 8)],
        "C01": str(folder / f"{prefix}A01Z01C01.tif"),
        "C02": str(folder / f"{prefix}A02Z01C02.tif"),
        "C03": str(folder / f"{prefix}A03Z01C03.tif"),
        "magnification": 40,
        "well": "D04",
        "field": "006",
        "id": prefix,
    }


def test_adipocyte_magnification_selects_one_folder(tmp_path):
    root = adipocyte_root(tmp_path)
    assert {item["magnification"] for item in adipocyte_datalist(root, magnification=40)} == {40}
    assert adipocyte_datalist(root, magnification="20x") == adipocyte_datalist(root / "20x_images")
    assert build_datalist("adipocyte", str(root), magnification=40) == adipocyte_datalist(root, magnification=40)
    with pytest.raises(LayoutError, match="60x_images"):
        adipocyte_datalist(root, magnification=60)


def test_adipocyte_incomplete_samples_are_all_listed(tmp_path):
    root = adipocyte_root(tmp_path)
    adipocyte_files(root / "40x_images", "C05", "002", brightfield=[1, 2, 4, 5, 6, 7])
    adipocyte_files(root / "40x_images", "C05", "003", targets=(1, 3))
    adipocyte_files(root / "60x_images", "E07", "009", brightfield=range(1, 7), targets=())
    with pytest.raises(LayoutError) as error:
        adipocyte_datalist(root)
    message = str(error.value)
    assert "samples (3)" in message
    assert f"40x_images/{PLATE}_C05_T0001F002L01: brightfield planes Z03 missing" in message
    assert f"40x_images/{PLATE}_C05_T0001F003L01: targets C02 missing" in message
    lacking = "brightfield planes Z07 missing; targets C01, C02, C03 missing"
    assert f"60x_images/{PLATE}_E07_T0001F009L01: {lacking}" in message


def test_adipocyte_brightfield_only_folder_for_inference(tmp_path):
    folder = tmp_path / "input"
    adipocyte_files(folder, "D04", "006", targets=())
    adipocyte_files(folder, "D04", "007", targets=(2,))
    with pytest.raises(LayoutError, match="targets C01, C02, C03 missing"):
        adipocyte_datalist(folder, magnification=40)
    items = adipocyte_datalist(folder, magnification=40, require_targets=False)
    assert [len(item["brightfield"]) for item in items] == [7, 7]
    assert "C01" not in items[0] and "C02" in items[1] and items[0]["magnification"] == 40


def test_adipocyte_layout_errors(tmp_path):
    with pytest.raises(LayoutError, match="not found"):
        adipocyte_datalist(tmp_path / "absent")
    with pytest.raises(LayoutError, match=r"no <20x\|40x\|60x>_images folder"):
        adipocyte_datalist(tmp_path)
    root = adipocyte_root(tmp_path / "data")
    touch(root / "40x_images" / "overview.tif")
    with pytest.raises(LayoutError, match="overview.tif: expected"):
        adipocyte_datalist(root)


def adipocyte_items(per_magnification: dict[int, int]) -> list[dict]:
    return [
        {"magnification": level, "id": f"{PLATE}_B{index:02d}_T0001F001L01"}
        for level, count in per_magnification.items()
        for index in range(count)
    ]


def test_adipocyte_split_sizes_determinism_and_independence_of_magnifications():
    items = adipocyte_items({20: 60, 40: 40, 60: 30})
    train, validation, test = adipocyte_split(items)
    parts = {"train": train, "val": validation, "test": test}
    sizes = Counter((part, item["magnification"]) for part, chosen in parts.items() for item in chosen)
    for level, count in {20: 60, 40: 40, 60: 30}.items():
        assert sizes[("test", level)] == round(0.1 * count)
        assert sizes[("val", level)] == round(0.2 * (count - round(0.1 * count)))
        assert sizes[("train", level)] == count - sizes[("test", level)] - sizes[("val", level)]
    ids = [(item["magnification"], item["id"]) for item in train + validation + test]
    assert sorted(ids) == sorted((item["magnification"], item["id"]) for item in items)
    assert adipocyte_split(items) == (train, validation, test)
    only_40 = adipocyte_split([item for item in items if item["magnification"] == 40])
    assert only_40 == tuple([item for item in chosen if item["magnification"] == 40] for chosen in parts.values())


# ----------------------------------------------------------------------------- on the synthetic generator's output


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Write a dataset with ``common.data.synthetic`` (small images) and return its folder."""
    module = pytest.importorskip("common.data.synthetic")

    def write(layout: str, n: int, **options) -> Path:
        folder = tmp_path_factory.mktemp(layout)
        return module.write_dataset(layout, folder / "data", n=n, size=32, seed=5, **options)

    return write


def test_synthetic_livecell_annotation_forms_and_nesting_agree(synthetic):
    keyed = synthetic("livecell", 12, annotations="dict")
    listed = synthetic("livecell", 12, annotations="list", nested_test=True)
    for split in ("train", "val", "test"):
        from_keyed, from_listed = quiet_livecell(keyed, split=split), quiet_livecell(listed, split=split)
        assert from_keyed, split
        assert [{**item, "image": Path(item["image"]).name} for item in from_keyed] == [
            {**item, "image": Path(item["image"]).name} for item in from_listed
        ]
    nested = quiet_livecell(listed, split="test")
    assert all(Path(item["image"]).parent.name == item["cell_type"] for item in nested)


def test_synthetic_livecell_masks_match_the_images(synthetic):
    from common.io.images import read_image

    for item in quiet_livecell(synthetic("livecell", 12), split="train"):
        image = read_image(item["image"])
        mask = CocoPolygonsToMaskd(keys="polygons", mask_keys="label")(item)["label"]
        assert mask.shape == (1, *image.shape) == (1, item["height"], item["width"])
        assert 0 < mask.mean() < 1 and len(item["polygons"]) > 0


def test_synthetic_lmc_items_cover_every_file(synthetic):
    root = synthetic("lmc", 8)
    items = lmc_datalist(root)
    listed = {path for item in items for path in item["inputs"] + list(item["targets"].values())}
    assert listed == {str(path) for path in root.rglob("*.ome.tiff")}
    for item in items:
        assert all(Path(path).name.startswith(f"image_{item['id'].split('_')[-1]}_{item['modality']}_z")
                   for path in item["inputs"])  # fmt: skip
        named = {Path(path).name.split("_")[2].split(".")[0] for path in item["targets"].values()}
        assert set(item["organelles"]) == named
        assert ("Tubulin" in item["organelles"]) == (item["study"] == 4)
    train, validation = lmc_split(items, val_fraction=0.25)
    assert sorted(item["id"] for item in train + validation) == sorted(item["id"] for item in items)


def test_synthetic_adipocyte_samples_complete_and_a_missing_plane_is_named(synthetic):
    root = synthetic("adipocyte", 6)
    items = adipocyte_datalist(root)
    assert [item["magnification"] for item in items] == [20, 20, 40, 40, 60, 60]
    assert {str(path) for path in root.rglob("*.tif")} == {
        path for item in items for path in item["brightfield"] + [item[name] for name in ("C01", "C02", "C03")]
    }
    assert len(adipocyte_datalist(root, magnification=60)) == 2
    plane = Path(items[3]["brightfield"][4])
    plane.unlink()
    with pytest.raises(LayoutError, match=f"40x_images/{items[3]['id']}: brightfield planes Z05 missing"):
        adipocyte_datalist(root)
