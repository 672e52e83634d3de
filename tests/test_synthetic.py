"""Synthetic datasets: the publishers' layouts, names, dtypes; determinism; no overwriting; learnable images."""

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage
from skimage.measure import regionprops

from common.data.scene import FLUORESCENCE_CHANNELS, LABEL_FREE_CHANNELS, Morphology, Optics, render_scene
from common.data.synthetic import LIVECELL_CELL_TYPES, WRITERS, _coco_annotations, _colour_instances, write_dataset
from common.io.coco import polygons_to_labels

SIZE = 64
REPO = Path(__file__).resolve().parents[1]
UUID = r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """``written(layout, n, **options)``: folder of that dataset (size 64, seed 3), written once per module."""
    folders = {}

    def write(layout: str, n: int, **options) -> Path:
        key = (layout, n, tuple(sorted(options.items())))
        if key not in folders:
            folders[key] = write_dataset(
                layout, tmp_path_factory.mktemp(layout) / "data", n=n, size=SIZE, seed=3, **options
            )
        return folders[key]

    return write


def relative_files(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def matching_tiffs(root: Path, pattern: str) -> Iterator[tuple[Path, tuple, np.ndarray]]:
    """``(path, groups of the match, pixels)`` of every file under ``root``, each relative name asserted to match
    ``pattern``."""
    for name in relative_files(root):
        match = re.fullmatch(pattern, name)
        assert match, name
        yield root / name, match.groups(), tifffile.imread(root / name)


def digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in relative_files(root)}


def adjacent_label_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different non-zero labels that are horizontal or vertical neighbours."""
    pairs = set()
    for first, second in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        differ = (first != second) & (first > 0) & (second > 0)
        pairs |= {tuple(sorted(pair)) for pair in zip(first[differ].tolist(), second[differ].tolist())}
    return pairs


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


# ----------------------------------------------------------------------------------------------- scenes


def test_scene_cells_touch_vary_in_size_and_are_not_all_convex():
    scene = render_scene((192, 192), seed=1, fluorescence=())
    labels = scene.labels
    assert labels.dtype == np.int32 and labels.shape == (192, 192)
    ids = np.unique(labels)
    assert ids[0] == 0 and np.array_equal(ids[1:], np.arange(1, len(ids))) and len(ids) > 20
    for region in regionprops(labels):
        assert ndimage.label(region.image)[1] == 1, f"cell {region.label} is in pieces"
    assert len(adjacent_label_pairs(labels)) >= 5
    areas = np.bincount(labels.ravel())[1:]
    assert areas.max() > 2.5 * areas.min()
    assert min(region.solidity for region in regionprops(labels)) < 0.9


def test_scene_nuclei_lie_inside_their_cells():
    scene = render_scene((128, 128), seed=2, fluorescence=())
    inside = scene.nuclei > 0
    assert inside.any() and np.array_equal(scene.nuclei[inside], scene.labels[inside])
    assert adjacent_label_pairs(scene.nuclei) == set()
    bare = render_scene((128, 128), morphology=Morphology(nucleus_size=None), seed=2, fluorescence=())
    assert np.array_equal(bare.nuclei, bare.labels)


def test_scene_repeats_for_a_seed_whatever_channels_are_rendered():
    every = render_scene((96, 96), optics=Optics(defocus=(-1, 0, 1)), seed=(4, 2), label_free=LABEL_FREE_CHANNELS)
    some = render_scene(
        (96, 96), optics=Optics(defocus=(-1, 0, 1)), seed=(4, 2), fluorescence=("actin",), label_free=("dic",)
    )
    other = render_scene((96, 96), seed=(4, 3), fluorescence=("actin",))
    assert set(every.fluorescence) == set(FLUORESCENCE_CHANNELS)
    assert every.label_free["brightfield"].shape == (3, 96, 96)
    assert all(image.dtype == np.float32 for image in [*every.fluorescence.values(), *every.label_free.values()])
    assert np.array_equal(every.labels, some.labels)
    assert np.array_equal(every.fluorescence["actin"], some.fluorescence["actin"])
    assert np.array_equal(every.label_free["dic"], some.label_free["dic"])
    assert not np.array_equal(every.labels, other.labels)


def test_label_free_images_predict_the_fluorescence_targets():
    scene = render_scene(
        (192, 192),
        optics=Optics(defocus=(-2, -1, 0, 1, 2)),
        seed=5,
        fluorescence=("nucleus",),
        label_free=LABEL_FREE_CHANNELS,
    )
    nucleus, cells = scene.fluorescence["nucleus"], scene.labels > 0
    assert pearson(scene.label_free["brightfield"].max(axis=0), nucleus) > 0.3
    assert pearson(scene.label_free["brightfield"][2], nucleus) < -0.2
    assert pearson(scene.label_free["phase_contrast"][2], cells) < -0.3
    defocused = scene.label_free["dic"]
    assert not np.allclose(defocused[0], defocused[2], atol=0.05)


def test_scene_rejects_bad_arguments():
    with pytest.raises(ValueError, match="fluorescence"):
        render_scene((64, 64), fluorescence=("dapi",))
    with pytest.raises(ValueError, match="shape"):
        render_scene((8, 64))
    with pytest.raises(ValueError, match="seed"):
        render_scene((64, 64), seed=-1)


# ----------------------------------------------------------------------------------------------- layouts


def test_dsb2018_layout_rgba_images_and_disjoint_binary_masks(written):
    root = written("dsb2018", 3)
    pattern = re.compile(r"stage1_train/([0-9a-f]{64})/(images/\1|masks/[0-9a-f]{64})\.png")
    names = relative_files(root)
    assert all(pattern.fullmatch(name) for name in names), names[:3]
    images = [name for name in names if "/images/" in name]
    assert len(images) == 3
    touching_images = 0
    for name in images:
        image = Image.open(root / name)
        assert image.mode == "RGBA"
        pixels = np.asarray(image)
        assert pixels.shape == (SIZE, SIZE, 4) and pixels.dtype == np.uint8
        assert (pixels[..., 3] == 255).all() and (pixels[..., 0] == pixels[..., 1]).all()
        assert (pixels[..., 0] == pixels[..., 2]).all()
        mask_files = sorted((root / name).parents[1].glob("masks/*.png"))
        assert all(Image.open(path).mode == "L" for path in mask_files)
        masks = np.stack([np.asarray(Image.open(path)) for path in mask_files])
        assert set(np.unique(masks)) == {0, 255} and (masks == 255).any(axis=(1, 2)).all()
        assert ((masks == 255).sum(axis=0) <= 1).all(), "masks overlap"
        labels = np.argmax(np.concatenate([np.zeros((1, SIZE, SIZE)), masks]), axis=0)
        touching_images += bool(adjacent_label_pairs(labels))
        grey = pixels[..., 0].astype(float)
        assert grey[labels > 0].mean() > 3 * grey[labels == 0].mean()
    assert touching_images >= 2


def test_bbbc039_layout_16bit_images_colour_masks_and_split(written):
    root = written("bbbc039", 4)
    stems = [path.stem for path in sorted((root / "images").iterdir())]
    assert len(stems) == 4 and all(re.fullmatch(rf"IXMtest_[A-P]\d\d_s[1-9]_w1{UUID}", stem) for stem in stems)
    assert relative_files(root) == sorted(
        [f"images/{stem}.tif" for stem in stems] + [f"masks/{stem}.png" for stem in stems]
        + [f"metadata/{split}.txt" for split in ("training", "validation", "test")]
    )  # fmt: skip
    listed = {
        split: (root / f"metadata/{split}.txt").read_text().splitlines() for split in ("training", "validation", "test")
    }
    assert [len(names) for names in listed.values()] == [2, 1, 1]
    assert sorted(sum(listed.values(), [])) == sorted(f"{stem}.png" for stem in stems)
    colour_neighbours = 0
    for stem in stems:
        image = tifffile.imread(root / f"images/{stem}.tif")
        assert image.dtype == np.uint16 and image.shape == (SIZE, round(SIZE * 696 / 520))
        mask = Image.open(root / f"masks/{stem}.png")
        assert mask.mode == "RGB"
        colours = np.asarray(mask).astype(np.int64) @ [65536, 256, 1]
        assert colours.shape == image.shape and (colours == 0).any()
        colour_neighbours += len(adjacent_label_pairs(colours))
        for colour in np.unique(colours[colours > 0]):  # 4- and 8-connected readers see the same nuclei
            same = colours == colour
            assert ndimage.label(same)[1] == ndimage.label(same, structure=np.ones((3, 3)))[1]
        assert image[colours > 0].mean() > 3 * image[colours == 0].mean()
    assert colour_neighbours > 0, "no touching nuclei (in different colours) at all"


def test_colour_masks_give_touching_labels_different_colours():
    labels = np.zeros((30, 30), np.int32)
    for index in range(9):  # a 3 x 3 block of touching squares, plus two corner-touching ones and a loner
        row, column = divmod(index, 3)
        labels[5 * row : 5 * row + 5, 5 * column : 5 * column + 5] = index + 1
    labels[15:20, 15:20], labels[20:25, 20:25], labels[26:29, 1:4] = 10, 11, 12
    colours = _colour_instances(labels).astype(np.int64) @ [65536, 256, 1]
    assert (colours[labels == 0] == 0).all() and (colours[labels > 0] > 0).all()
    recovered = np.zeros_like(labels)
    for colour in np.unique(colours[colours > 0]):
        parts, count = ndimage.label(colours == colour, structure=np.ones((3, 3)))
        recovered[parts > 0] = parts[parts > 0] + recovered.max()
    pairs = {(a, b) for a, b in zip(labels.ravel(), recovered.ravel()) if a > 0}
    assert len(pairs) == 12 and len({a for a, _ in pairs}) == len({b for _, b in pairs}) == 12
    assert len(np.unique(colours)) - 1 < 12, "colours should repeat between nuclei that do not touch"


def test_neurips_layout_mixes_formats_and_bit_depths(written):
    root = written("neurips", 6)
    images = sorted((root / "images").iterdir())
    assert [path.name for path in sorted((root / "labels").iterdir())] == [
        f"cell_{i:05d}_label.tiff" for i in range(1, 7)
    ]
    assert all(re.fullmatch(r"cell_\d{5}\.(png|bmp|tif)", path.name) for path in images)
    assert {path.suffix for path in images} == {".png", ".bmp", ".tif"}
    kinds, label_dtypes = set(), set()
    for path in images:
        pixels = tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        kinds.add((pixels.dtype.name, "grey" if channels == 1 else "rgb" if channels == 3 else "multi"))
        labels = tifffile.imread(root / "labels" / f"{path.stem}_label.tiff")
        assert labels.shape == pixels.shape[:2] == (SIZE, SIZE) and labels.max() > 0
        label_dtypes.add(labels.dtype.name)
    assert {("uint8", "grey"), ("uint8", "rgb"), ("uint16", "grey"), ("uint16", "multi")} <= kinds
    assert label_dtypes == {"uint16", "uint32"}


def polygon_area(polygon: list[float]) -> float:
    x, y = np.asarray(polygon[0::2]), np.asarray(polygon[1::2])
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def test_livecell_layout_images_and_coco_annotations(written):
    root = written("livecell", 10)
    width = round(SIZE * 704 / 520)
    name = r"(A172|BT474|BV2|Huh7|MCF7|SHSY5Y|SkBr3|SKOV3)_Phase_[A-H]\d{1,2}_\d_\d\dd\d\dh\d\dm_\d\.tif"
    folders = {"train": "livecell_train_val_images", "val": "livecell_train_val_images", "test": "livecell_test_images"}
    annotation_ids, image_counts = set(), []
    for split, folder in folders.items():
        document = json.loads((root / f"livecell_coco_{split}.json").read_text())
        assert document["categories"] == [{"id": 1, "name": "cell"}]
        assert isinstance(document["annotations"], dict)
        image_counts.append(len(document["images"]))
        sizes = {}
        for image in document["images"]:
            assert re.fullmatch(name, image["file_name"]) and (image["width"], image["height"]) == (width, SIZE)
            pixels = tifffile.imread(root / "images" / folder / image["file_name"])
            assert pixels.dtype == np.uint8 and pixels.shape == (SIZE, width)
            sizes[image["id"]] = (image["width"], image["height"])
        for key, annotation in document["annotations"].items():
            assert key == str(annotation["id"]) and annotation["id"] not in annotation_ids
            annotation_ids.add(annotation["id"])
            assert annotation["image_id"] in sizes and annotation["category_id"] == 1 and annotation["iscrowd"] == 0
            (polygon,) = annotation["segmentation"]
            x, y = np.asarray(polygon[0::2]), np.asarray(polygon[1::2])
            assert len(polygon) >= 6 and len(polygon) % 2 == 0
            image_width, image_height = sizes[annotation["image_id"]]
            assert x.min() >= 0 and y.min() >= 0 and x.max() <= image_width and y.max() <= image_height
            left, top, box_width, box_height = annotation["bbox"]
            assert (
                left - 1 <= x.min()
                and x.max() <= left + box_width
                and top - 1 <= y.min() <= y.max() <= top + box_height
            )
            assert 0.6 < polygon_area(polygon) / annotation["area"] < 1.2
    assert image_counts == [6, 1, 3] and len(annotation_ids) > 30
    assert len(relative_files(root)) == 10 + 3


def test_livecell_options_plain_list_and_test_images_by_cell_type(written):
    keyed, listed = written("livecell", 10), written("livecell", 10, annotations="list", nested_test=True)
    for split in ("train", "val", "test"):
        from_keyed = json.loads((keyed / f"livecell_coco_{split}.json").read_text())
        from_listed = json.loads((listed / f"livecell_coco_{split}.json").read_text())
        assert isinstance(from_listed["annotations"], list)
        assert list(from_keyed["annotations"].values()) == from_listed["annotations"]
    nested = sorted((listed / "images/livecell_test_images").rglob("*.tif"))
    assert len(nested) == 3 and all(path.name.startswith(f"{path.parent.name}_Phase_") for path in nested)


def rasterised(labels: np.ndarray) -> np.ndarray:
    """The labels the COCO annotations written for (H, W) ``labels`` give back, numbered like ``labels``."""
    annotations = _coco_annotations(labels, image_id=1, first_id=1)
    numbers = np.array([0] + [label for label in np.unique(labels) if label])
    return numbers[polygons_to_labels([annotation["segmentation"] for annotation in annotations], *labels.shape)]


@pytest.mark.parametrize("cell_type", sorted(LIVECELL_CELL_TYPES))
def test_livecell_polygons_rasterise_to_the_rendered_cells(cell_type):
    # COCO puts pixel (r, c) on [c, c + 1) x [r, r + 1): polygons half a pixel too small lose a rim of pixels
    scene = render_scene((96, 130), morphology=LIVECELL_CELL_TYPES[cell_type], seed=(1, 2, 3), fluorescence=(),
                         label_free=())  # fmt: skip
    assert len(np.unique(scene.labels)) > 5
    np.testing.assert_array_equal(rasterised(scene.labels), scene.labels)


def test_livecell_polygons_of_border_thin_and_split_cells():
    labels = np.zeros((9, 12), np.int32)
    labels[0:3, 9:12] = 1  # touches the top and right borders: polygon reaches x = W
    labels[5, 0:12] = 2  # one pixel thick, border to border
    labels[7, 2] = labels[8, 3] = 3  # two pieces touching at a corner: two polygon parts
    labels[1:4, 1:4] = 4
    labels[2, 2] = 0  # a hole cannot be written as COCO polygons: filled
    expected = labels.copy()
    expected[2, 2] = 4
    np.testing.assert_array_equal(rasterised(labels), expected)
    annotations = _coco_annotations(labels, image_id=1, first_id=1)
    assert [len(annotation["segmentation"]) for annotation in annotations] == [1, 1, 2, 1]
    x = np.asarray(annotations[0]["segmentation"][0][0::2])
    assert x.max() == 12 and annotations[0]["bbox"] == [9.0, 0.0, 3.0, 3.0]


def ome_pixel_size(path: Path) -> tuple[float, float]:
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        pixels = re.search(r"<Pixels [^>]*>", tif.ome_metadata).group(0)
    size = {axis: float(re.search(rf'PhysicalSize{axis}="([^"]+)"', pixels).group(1)) for axis in "XY"}
    assert re.search(r'PhysicalSizeXUnit="µm"', pixels)
    return size["Y"], size["X"]


def test_lmc_layout_ome_tiffs_with_pixel_size_and_study_organelles(written):
    pattern = r"Study_(\d+)/image_(\d+)_(?:(BF|PC|DIC)_z(\d+)|(Nucleus|Mitochondria|Actin|Tubulin))\.ome\.tiff"
    studies: dict = {}
    for path, (study, image, modality, plane, organelle), pixels in matching_tiffs(written("lmc", 8), pattern):
        entry = studies.setdefault(int(study), {}).setdefault(
            int(image), {"planes": [], "modality": set(), "organelles": set()}
        )
        assert pixels.shape == (SIZE, SIZE)
        pixel_height, pixel_width = ome_pixel_size(path)
        assert pixel_height == pixel_width > 0
        if organelle:
            entry["organelles"].add(organelle)
            assert pixels.dtype == np.uint16
        else:
            entry["planes"].append(int(plane))
            entry["modality"].add((modality, pixels.dtype.name))
    assert sorted(studies) == [1, 2, 3, 4] and sum(len(images) for images in studies.values()) == 8
    input_dtypes = set()
    for number, images in studies.items():
        assert len({frozenset(entry["organelles"]) for entry in images.values()}) == 1, "one organelle set per study"
        assert len(set().union(*(entry["modality"] for entry in images.values()))) == 1, "one modality per study"
        for entry in images.values():
            assert sorted(entry["planes"]) == list(range(len(entry["planes"]))) and len(entry["planes"]) >= 3
            assert "Nucleus" in entry["organelles"] and ("Tubulin" in entry["organelles"]) == (number == 4)
            input_dtypes |= {dtype for _, dtype in entry["modality"]}
    organelle_sets = {frozenset(next(iter(images.values()))["organelles"]) for images in studies.values()}
    assert len(organelle_sets) > 1 and {"uint8", "uint16"} == input_dtypes


def test_adipocyte_layout_seven_brightfield_planes_and_three_targets(written):
    pattern = r"(20x|40x|60x)_images/(AssayPlate_Greiner_#655090_[B-H]\d\d_T0001F\d{3}L01)A0(\d)Z0(\d)C0(\d)\.tif"
    fields: dict = {}
    for _, (magnification, prefix, action, plane, channel), pixels in matching_tiffs(written("adipocyte", 6), pattern):
        fields.setdefault((magnification, prefix), set()).add(f"A0{action}Z0{plane}C0{channel}")
        assert pixels.dtype == np.uint16 and pixels.shape == (SIZE, round(SIZE * 2554 / 2154))
    expected = {f"A04Z0{z}C04" for z in range(1, 8)} | {"A01Z01C01", "A02Z01C02", "A03Z01C03"}
    assert len(fields) == 6 and all(found == expected for found in fields.values())
    assert {magnification for magnification, _ in fields} == {"20x", "40x", "60x"}


def test_written_brightfield_maximum_projection_correlates_with_nuclei(written):
    root = written("adipocyte", 6)
    correlations = []
    for nuclei in sorted(root.glob("20x_images/*A01Z01C01.tif")):
        prefix = nuclei.name[: -len("A01Z01C01.tif")]
        planes = np.stack([tifffile.imread(nuclei.parent / f"{prefix}A04Z0{z}C04.tif") for z in range(1, 8)])
        correlations.append(pearson(planes.max(axis=0), tifffile.imread(nuclei)))
    assert len(correlations) == 2 and min(correlations) > 0.25


# ----------------------------------------------------------------------------------------------- behaviour


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for layout in WRITERS:
        first, again, other = (
            digests(write_dataset(layout, tmp_path / f"{layout}{run}", n=2, size=48, seed=seed))
            for run, seed in (("a", 7), ("b", 7), ("c", 8))
        )
        assert first == again and len(first) >= 2, layout
        assert first != other, layout


def test_existing_files_are_never_replaced(tmp_path):
    root = write_dataset("bbbc039", tmp_path / "data", n=2, size=48, seed=1)
    before = digests(root)
    with pytest.raises(FileExistsError, match=re.escape(str(root / "images"))):
        write_dataset("bbbc039", root, n=2, size=48, seed=1)
    assert digests(root) == before
    precious = tmp_path / "theirs" / next(name for name in before if name.startswith("masks/"))
    precious.parent.mkdir(parents=True)
    precious.write_bytes(b"a user's own file")
    with pytest.raises(FileExistsError, match=re.escape(str(precious))):
        write_dataset("bbbc039", tmp_path / "theirs", n=2, size=48, seed=1)
    assert precious.read_bytes() == b"a user's own file"
    assert relative_files(tmp_path / "theirs") == [f"masks/{precious.name}"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="layout"):
        write_dataset("kaggle", "unused")
    with pytest.raises(ValueError, match="size"):
        write_dataset("dsb2018", "unused", size=16)
    with pytest.raises(ValueError, match="annotations"):
        write_dataset("livecell", "unused", annotations="rle")


def test_command_line_writes_prints_a_summary_and_refuses_to_overwrite(tmp_path):
    command = [
        sys.executable,
        "-m",
        "common.data.synthetic",
        "dsb2018",
        str(tmp_path / "out"),
        "--n",
        "2",
        "--size",
        "48",
    ]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    first = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "dsb2018: wrote" in first.stderr and str(tmp_path / "out") in first.stderr
    assert len(list((tmp_path / "out/stage1_train").glob("*/images/*.png"))) == 2
    again = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_command_line_help_lists_every_layout(capsys):
    from common.data.synthetic import main

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert all(layout in text for layout in WRITERS) and "height" in text
