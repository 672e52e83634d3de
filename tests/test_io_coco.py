"""COCO reading (list and keyed-by-id forms), polygon rasterisation and the polygon-to-mask transforms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from common.io.coco import (
    CocoPolygonsToMask,
    CocoPolygonsToMaskd,
    load_coco,
    polygons_to_labels,
    polygons_to_mask,
)
from common.io.errors import DataError, LayoutError


def square(x0, y0, x1, y1):
    """One polygon part: the axis-aligned rectangle with corners (x0, y0) and (x1, y1)."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def picture(rows):
    """Mask drawn as strings, '#' foreground."""
    return np.array([[char == "#" for char in row] for row in rows])


# ----------------------------------------------------------------------------------------------- reading


def coco_content(keyed: bool) -> dict:
    images = [
        {"id": 7, "file_name": "b.tif", "height": 20, "width": 30},
        {"id": 3, "file_name": "a.tif", "height": 20, "width": 30},
        {"id": 9, "file_name": "empty.tif", "height": 20, "width": 30},
    ]
    annotations = [
        {"id": 12, "image_id": 3, "segmentation": [square(5, 5, 9, 9)], "category_id": 1},
        {"id": 10, "image_id": 3, "segmentation": [square(0, 0, 2, 2)], "category_id": 1},
        {"id": 11, "image_id": 7, "segmentation": [square(1, 1, 4, 4), square(6, 6, 8, 8)], "category_id": 1},
    ]
    if keyed:  # the official LIVECell form: annotations keyed by id as strings
        annotations = {str(annotation["id"]): annotation for annotation in annotations}
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]}


def write_json(path, content):
    path.write_text(json.dumps(content))
    return path


def test_list_and_keyed_annotations_give_the_same_index(tmp_path):
    listed = load_coco(write_json(tmp_path / "listed.json", coco_content(keyed=False)))
    keyed = load_coco(write_json(tmp_path / "keyed.json", coco_content(keyed=True)))
    assert listed.images == keyed.images and listed.annotations == keyed.annotations
    assert [annotation["id"] for annotation in keyed.annotations["a.tif"]] == [10, 12]  # ascending id
    assert keyed.segmentations("a.tif") == [[square(0, 0, 2, 2)], [square(5, 5, 9, 9)]]
    assert keyed.segmentations("empty.tif") == [] and "empty.tif" not in keyed.annotations
    assert keyed.categories == [{"id": 1, "name": "cell"}]


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(DataError, match="broken.json.*not a valid JSON"):
        load_coco(path)


@pytest.mark.parametrize("key", ["images", "annotations"])
def test_missing_top_level_key_names_file_and_key(tmp_path, key):
    content = coco_content(keyed=False)
    del content[key]
    with pytest.raises(DataError, match=f"nokey.json: missing key '{key}'"):
        load_coco(write_json(tmp_path / "nokey.json", content))


def test_record_lacking_a_field_is_named(tmp_path):
    content = coco_content(keyed=False)
    del content["annotations"][1]["segmentation"]
    with pytest.raises(DataError, match="record 1 of 'annotations' lacks 'segmentation'"):
        load_coco(write_json(tmp_path / "c.json", content))


def test_annotation_of_unknown_image_is_refused(tmp_path):
    content = coco_content(keyed=False)
    content["annotations"][0]["image_id"] = 404
    with pytest.raises(DataError, match="annotation 12 refers to image_id 404"):
        load_coco(write_json(tmp_path / "c.json", content))


def test_missing_file_is_a_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="absent.json"):
        load_coco(tmp_path / "absent.json")


# ------------------------------------------------------------------------------------------ rasterising


def test_integer_rectangle_covers_its_area_at_its_place():
    mask = polygons_to_mask([square(2, 3, 7, 5)], 10, 12)
    assert mask.shape == (10, 12) and mask.dtype == bool
    assert mask.sum() == 5 * 2
    assert mask[3:5, 2:7].all()  # rows y0..y1-1, columns x0..x1-1


# Expected masks computed with pycocotools 2.0 (frPyObjects + merge + decode) on the same polygons.
PYCOCOTOOLS_MASKS = {
    "float vertices": (
        [[1.3, 0.7, 10.6, 2.2, 8.1, 8.4, 2.49, 6.51]],
        ["............", "..####......", "..########..", "..########..", "..########..",
         "..#######...", "..#######...", ".....####...", "............"],
    ),
    "half-integer rectangle (ties on pixel centres)": (
        [square(0.5, 0.5, 6.5, 4.5)],
        ["............", ".######.....", ".######.....", ".######.....", ".######.....",
         "............", "............", "............", "............"],
    ),
    "self-intersecting part, even-odd fill": (
        [[1, 1, 11, 8, 11, 1, 1, 8]],
        ["............", ".#........#.", ".##......##.", ".####..####.", ".##########.",
         ".###....###.", ".##......##.", ".#........#.", "............"],
    ),
    "beyond the borders, clipped": (
        [[-3.2, -2.0, 14.7, 3.3, 5.0, 12.0]],
        ["#####.......", "########....", "############", "############", ".###########",
         ".###########", "..#########.", "..########..", "...######..."],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PYCOCOTOOLS_MASKS))
def test_masks_equal_those_of_pycocotools(case):
    segmentation, rows = PYCOCOTOOLS_MASKS[case]
    np.testing.assert_array_equal(polygons_to_mask(segmentation, 9, 12), picture(rows))


def test_several_parts_are_unioned():
    disjoint = polygons_to_mask([square(0, 0, 3, 3), square(5, 5, 9, 7)], 10, 10)
    overlapping = polygons_to_mask([square(0, 0, 4, 4), square(2, 2, 6, 6)], 10, 10)
    assert disjoint.sum() == 9 + 8
    assert overlapping.sum() == 16 + 16 - 4


def test_a_part_inside_another_cuts_no_hole():
    outer = polygons_to_mask([square(1, 1, 9, 9)], 10, 10)
    nested = polygons_to_mask([square(1, 1, 9, 9), square(3, 3, 6, 6)], 10, 10)
    np.testing.assert_array_equal(nested, outer)
    assert nested.sum() == 64


def test_a_keyhole_polygon_has_a_hole():
    # a mask with a hole drawn as one polygon: the outer ring, a zero-width cut, the inner ring backwards
    keyhole = [1, 1, 9, 1, 9, 9, 1, 9, 1, 5, 3, 5, 3, 6, 6, 6, 6, 3, 3, 3, 3, 5, 1, 5]
    mask = polygons_to_mask([keyhole], 10, 10)
    expected = np.zeros((10, 10), bool)
    expected[1:9, 1:9] = True
    expected[3:6, 3:6] = False
    np.testing.assert_array_equal(mask, expected)


def test_polygons_touching_the_border_keep_border_pixels():
    assert polygons_to_mask([square(0, 0, 12, 10)], 10, 12).all()
    right_edge = polygons_to_mask([square(9, 0, 12, 10)], 10, 12)  # as LIVECell cells cut by the border (x = W)
    assert right_edge.sum() == 30 and right_edge[:, -1].all()
    assert polygons_to_mask([square(8, 6, 20, 20)], 10, 12).sum() == 4 * 4  # clipped to the image


def test_degenerate_parts_are_skipped():
    assert not polygons_to_mask([[2, 2, 8, 8], [3, 3]], 10, 10).any()
    assert not polygons_to_mask([], 10, 10).any()
    assert polygons_to_mask([[2, 2, 8, 8], square(0, 0, 2, 2)], 10, 10).sum() == 4


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ([[1, 1, 5, 1, 5]], "odd number of coordinates"),
        ([[1, 1, 5, 1, float("nan"), 5]], "finite"),
        ([1, 1, 5, 1, 5, 5], "flat list"),
        ({"counts": [0, 4], "size": [2, 2]}, "RLE"),
        (np.zeros((4, 2)), "wrap it in a list"),
    ],
)
def test_malformed_segmentations_are_refused(segmentation, message):
    with pytest.raises(DataError, match=message):
        polygons_to_mask(segmentation, 10, 10)


def test_labels_number_annotations_and_later_ones_win_overlaps():
    segmentations = [[square(0, 0, 4, 4)], [square(2, 2, 6, 6)], [square(8, 8, 9, 9), square(0, 8, 1, 9)]]
    labels = polygons_to_labels(segmentations, 10, 10)
    assert labels.dtype == np.int32 and labels.shape == (10, 10)
    assert [(labels == value).sum() for value in range(4)] == [100 - 12 - 16 - 2, 12, 16, 2]
    assert labels[3, 3] == 2  # in both squares: the later annotation
    union = polygons_to_mask([part for segmentation in segmentations for part in segmentation], 10, 10)
    np.testing.assert_array_equal(labels > 0, union)


# ---------------------------------------------------------------------------------------- MONAI transforms


def test_array_transform_gives_a_channel_first_uint8_mask():
    mask = CocoPolygonsToMask()([[square(0, 0, 4, 4)], [square(6, 0, 8, 2), square(6, 5, 8, 7)]], 8, 10)
    assert mask.shape == (1, 8, 10) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1} and mask.sum() == 16 + 4 + 4


def item():
    return {"image": "a.tif", "polygons": [[square(0, 0, 4, 4)]], "height": 8, "width": 10}


def test_dict_transform_replaces_polygons_by_default_and_leaves_the_item_alone():
    original = item()
    out = CocoPolygonsToMaskd(keys="polygons")(original)
    assert out["polygons"].shape == (1, 8, 10) and out["polygons"].sum() == 16
    assert original == item()


def test_dict_transform_writes_to_mask_keys_and_drops_ragged_polygons():
    out = CocoPolygonsToMaskd(keys="polygons", mask_keys="label")(item())
    assert "polygons" not in out and out["label"].sum() == 16
    kept = CocoPolygonsToMaskd(keys="polygons", mask_keys="label", keep_polygons=True)(item())
    assert kept["polygons"] == item()["polygons"]


def test_dict_transform_missing_keys():
    without = {key: value for key, value in item().items() if key != "polygons"}
    assert CocoPolygonsToMaskd(keys="polygons", allow_missing_keys=True)(without) == without
    with pytest.raises(KeyError):
        CocoPolygonsToMaskd(keys="polygons")(without)
    with pytest.raises(KeyError, match="width"):
        CocoPolygonsToMaskd(keys="polygons")({"polygons": [], "height": 8})


def test_items_batch_after_the_transform():
    items = [item(), {**item(), "polygons": [[square(0, 0, 2, 2)], [square(5, 5, 7, 8)]]}]
    dataset = Dataset(items, Compose([CocoPolygonsToMaskd(keys="polygons", mask_keys="label")]))
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert tuple(batch["label"].shape) == (2, 1, 8, 10)
    assert batch["label"].sum(dim=(1, 2, 3)).tolist() == [16, 4 + 6]
