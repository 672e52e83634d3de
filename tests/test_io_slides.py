"""Whole-slide reading and writing (common.io.slides) and synthetic slides (common.data.synthetic_slides).

Stores and TIFFs are written here by zarr and tifffile directly (independently of the code under test), and
the writer's output is read back by the reference reader ``ome_zarr``.
"""

import csv
import pickle

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from skimage.measure import regionprops

from common.data.synthetic import SyntheticSlide, seam_crossings, write_slide
from common.io import ImageFileError, read_pixel_size, slides
from common.io.slides import OmeZarrWriter, open_slide, tiff_from_zarr, write_cell_table

SHAPE = (300, 500)
CHUNK = 128


def _pixels(shape, seed=0, dtype=np.uint16):
    return np.random.default_rng(seed).integers(0, 60000, shape).astype(dtype)


def _mean_2x2(image):
    """Independent 2x2 mean with an odd edge paired with itself: (..., h, w) -> (..., ceil(h/2), ceil(w/2))."""
    h, w = image.shape[-2:]
    padded = np.pad(image.astype(np.float64), [(0, 0)] * (image.ndim - 2) + [(0, h % 2), (0, w % 2)], mode="edge")
    quads = padded[..., ::2, ::2] + padded[..., 1::2, ::2] + padded[..., ::2, 1::2] + padded[..., 1::2, 1::2]
    return np.rint(quads / 4).astype(image.dtype)


# ----------------------------------------------------------------------------------------------------- reading


def _ngff_store(path, ngff, data, scale0=(0.5, 0.25), unit="micrometer", names=("dapi", "gfp")):
    """An NGFF image written by hand with zarr: axes t, c, z, y, x; level 1 by striding; 0.4 as Zarr v2."""
    v2 = ngff == "0.4"
    root = zarr.open_group(path, mode="w", zarr_format=2 if v2 else 3)
    datasets = []
    for level, array in enumerate((data, data[..., ::2, ::2])):
        options = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if v2 else {"dimension_names": list("tczyx")}
        stored = root.create_array(
            str(level), shape=array.shape, chunks=(1, 1, 1, 64, 96), dtype=array.dtype, **options
        )
        stored[...] = array
        scale = [1.0, 1.0, 2.0, scale0[0] * 2**level, scale0[1] * 2**level]
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}, {"name": "z", "type": "space"}]
    axes += [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in "yx"]
    attributes = {
        "multiscales": [{"axes": axes, "datasets": datasets, **({"version": "0.4"} if v2 else {})}],
        "omero": {"channels": [{"label": name} for name in names]},
    }
    root.attrs.update(attributes if v2 else {"ome": {"version": "0.5", **attributes}})
    return path


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_ome_zarr_levels_values_pixel_size_and_merged_channels(tmp_path, ngff):
    data = _pixels((1, 2, 3, *SHAPE))
    store = _ngff_store(tmp_path / "slide.ome.zarr", ngff, data)
    slide = open_slide(store)
    assert slide.levels == 2 and slide.level == 0
    assert slide.array.shape == (6, *SHAPE) and slide.array.chunks[1][0] == 64 and slide.array.chunks[2][0] == 96
    np.testing.assert_array_equal(slide.array.compute(), data[0].reshape(6, *SHAPE))  # channel-major: c * Z + z
    assert slide.pixel_size == (0.5, 0.25)
    assert slide.channel_names == ["dapi z0", "dapi z1", "dapi z2", "gfp z0", "gfp z1", "gfp z2"]
    level1 = open_slide(store, level=1)
    np.testing.assert_array_equal(level1.array[3:4, 10:20, 30:40].compute(), data[0, 1, :1, 20:40:2, 60:80:2])
    assert level1.pixel_size == (1.0, 0.5)


def test_ome_zarr_without_units_has_no_pixel_size_and_time_series_are_refused(tmp_path):
    assert open_slide(_ngff_store(tmp_path / "a.zarr", "0.4", _pixels((1, 2, 1, 40, 30)), unit=None)).pixel_size is None
    store = _ngff_store(tmp_path / "movie.zarr", "0.5", _pixels((3, 2, 1, 40, 30)))
    with pytest.raises(ImageFileError, match=r"movie\.zarr.*3 time points"):
        open_slide(store)


def _pyramid_tiff(path, data, pixel_size, ome=True, axes="CYX"):
    """A tiled BigTIFF written by tifffile with level 1 (strided) in SubIFDs."""
    metadata = {"axes": axes} if ome else None  # plain: tifffile's generic series, levels from the SubIFDs
    if ome:
        metadata.update(PhysicalSizeY=pixel_size[0], PhysicalSizeX=pixel_size[1], Channel={"Name": ["a", "b"]})
    options = {"tile": (CHUNK, CHUNK), "photometric": "minisblack", "compression": "zlib"}
    resolution = {"resolution": (1e4 / pixel_size[1], 1e4 / pixel_size[0]), "resolutionunit": 3}
    with tifffile.TiffWriter(path, bigtiff=True, ome=ome) as tiff:
        tiff.write(data, subifds=1, metadata=metadata, **resolution, **options)
        tiff.write(np.ascontiguousarray(data[..., ::2, ::2]), subfiletype=1, **options)
    return path


@pytest.mark.parametrize("ome", [True, False], ids=["ome-tiff", "tiff"])
def test_pyramidal_tiff_levels_values_and_pixel_size(tmp_path, ome):
    data = _pixels((2, *SHAPE))
    path = _pyramid_tiff(tmp_path / ("slide.ome.tif" if ome else "slide.tif"), data, (0.4, 0.3), ome=ome)
    slide = open_slide(path)
    assert slide.levels == 2 and slide.array.chunks[1][0] == CHUNK  # read tile by tile
    np.testing.assert_array_equal(slide.array.compute(), data)
    assert slide.pixel_size == pytest.approx((0.4, 0.3))
    assert slide.channel_names == (["a", "b"] if ome else None)
    level1 = open_slide(path, 1)
    np.testing.assert_array_equal(level1.array.compute(), data[:, ::2, ::2])
    assert level1.pixel_size == pytest.approx((0.8, 0.6))


def test_tiff_planes_rgb_and_imagej_become_channels(tmp_path):
    planes = _pixels((2, 3, 64, 80))  # C, Z
    tifffile.imwrite(tmp_path / "cz.ome.tif", planes, ome=True, metadata={"axes": "CZYX"}, tile=(32, 32))
    np.testing.assert_array_equal(open_slide(tmp_path / "cz.ome.tif").array.compute(), planes.reshape(6, 64, 80))
    rgb = _pixels((64, 80, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(open_slide(tmp_path / "rgb.tif").array.compute(), np.moveaxis(rgb, -1, 0))
    stack = _pixels((3, 64, 80))
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, metadata={"axes": "ZYX", "unit": "um"}, resolution=(2, 4))
    slide = open_slide(tmp_path / "ij.tif")
    np.testing.assert_array_equal(slide.array.compute(), stack)
    assert slide.pixel_size == pytest.approx((0.25, 0.5))
    grey = _pixels((64, 80))
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    assert open_slide(tmp_path / "grey.tif").array.shape == (1, 64, 80)


def test_a_tiff_slide_pickles_for_distributed_workers(tmp_path):
    data = _pixels((2, *SHAPE))
    path = _pyramid_tiff(tmp_path / "slide.ome.tif", data, (0.4, 0.3))
    array = open_slide(path).array
    array[:, :10, :10].compute()  # the file is open in this process
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(array))[:, 100:200, 300:].compute(), data[:, 100:200, 300:])


def test_reading_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.ome.zarr"):
        open_slide(tmp_path / "nothing.ome.zarr")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageFileError, match=r"notes\.txt: not a slide"):
        open_slide(tmp_path / "notes.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ImageFileError, match=r"folder: not a slide"):
        open_slide(tmp_path / "folder")
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(ImageFileError, match=r"plain\.zarr: not a slide.*multiscales"):
        open_slide(tmp_path / "plain.zarr")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageFileError, match=r"broken\.tif"):
        open_slide(tmp_path / "broken.tif")
    path = _pyramid_tiff(tmp_path / "slide.ome.tif", _pixels((2, 64, 64)), (1, 1))
    with pytest.raises(ValueError, match=r"slide\.ome\.tif: no resolution level 2, the slide has 2 level"):
        open_slide(path, level=2)
    with pytest.raises(ValueError, match=r"a\.zarr: no resolution level -1, the slide has 2 level"):
        open_slide(_ngff_store(tmp_path / "a.zarr", "0.4", _pixels((1, 2, 1, 40, 30))), level=-1)


# ----------------------------------------------------------------------------------------------------- writing


def _write_all(writer, image, labels=None, block=256):
    for y in range(0, image.shape[-2], block):
        for x in range(0, image.shape[-1], block):
            writer.write_image(y, x, image[:, y : y + block, x : x + block])
            if labels is not None:
                writer.write_labels(y, x, labels[y : y + block, x : x + block])


def _labels(shape, seed=1):
    return np.random.default_rng(seed).integers(0, 2**20, shape).astype(np.uint32)


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_writer_output_opens_with_ome_zarr_and_open_slide(tmp_path, ngff):
    image, labels = _pixels((2, *SHAPE)), _labels(SHAPE)
    path = tmp_path / "out.ome.zarr"
    writer = OmeZarrWriter(
        path, SHAPE, image=("uint16", 2, ["dapi", "gfp"]), labels=("cells", "uint32"), chunk=CHUNK,
        pixel_size=(0.5, 0.25), ngff=ngff,
    )  # fmt: skip
    _write_all(writer, image, labels)
    assert not path.exists() and (tmp_path / "out.ome.zarr.partial").is_dir()
    assert writer.finish() == path and not (tmp_path / "out.ome.zarr.partial").exists()
    assert zarr.open_group(path, mode="r").metadata.zarr_format == (2 if ngff == "0.4" else 3)

    nodes = list(Reader(parse_url(str(path)))())
    image_node = next(n for n in nodes if any(isinstance(s, Multiscales) for s in n.specs) and not n.load(Label))
    label_node = next(n for n in nodes if n.load(Label))
    levels = writer.levels()
    assert levels == 3  # 500 -> 250 -> 125 <= 128
    assert [tuple(d.shape) for d in image_node.data] == [(2, 300, 500), (2, 150, 250), (2, 75, 125)]
    scales = [t[0]["scale"] for t in image_node.metadata["coordinateTransformations"]]
    assert scales == [[1.0, 0.5 * 2**k, 0.25 * 2**k] for k in range(levels)]
    assert [axis.get("unit") for axis in image_node.metadata["axes"]] == [None, "micrometer", "micrometer"]
    assert image_node.metadata["channel_names"] == ["dapi", "gfp"]  # omero channel labels
    np.testing.assert_array_equal(np.asarray(image_node.data[0]), image)
    np.testing.assert_array_equal(np.asarray(image_node.data[1]), _mean_2x2(image))
    np.testing.assert_array_equal(np.asarray(image_node.data[2]), _mean_2x2(_mean_2x2(image)))
    assert label_node.metadata["name"] == "cells"
    for level, data in enumerate(label_node.data):  # labels: stride downsampling keeps ids
        np.testing.assert_array_equal(np.asarray(data)[0], labels[:: 2**level, :: 2**level])

    slide = open_slide(path, level=1)
    assert slide.levels == 3 and slide.pixel_size == (1.0, 0.5) and slide.channel_names == ["dapi", "gfp"]
    np.testing.assert_array_equal(slide.array.compute(), _mean_2x2(image))
    np.testing.assert_array_equal(open_slide(path / "labels" / "cells", 2).array.compute()[0], labels[::4, ::4])


def test_writer_resumes_a_partial_store_and_refuses_other_arguments(tmp_path, monkeypatch):
    image, labels = _pixels((1, *SHAPE), dtype=np.float32), _labels(SHAPE)
    path = tmp_path / "out.ome.zarr"
    arguments = {"image": ("float32", 1), "labels": ("nuclei", "uint32"), "chunk": CHUNK}
    first = OmeZarrWriter(path, SHAPE, **arguments)
    first.write_image(0, 0, image[:, :256, :256])
    first.write_labels(0, 0, labels[:256, :256])
    first.ledger.mkdir()
    (first.ledger / "0_0.done").write_text("[]")
    del first  # killed
    with pytest.raises(ValueError, match=r"out\.ome\.zarr\.partial: an interrupted store of other arguments.*chunk"):
        OmeZarrWriter(path, SHAPE, **{**arguments, "chunk": 64})
    again = OmeZarrWriter(path, SHAPE, **arguments)
    stored = zarr.open_array(again.partial / "0", mode="r")
    np.testing.assert_array_equal(stored[:, :256, :256], image[:, :256, :256])  # the first block is kept
    assert (again.ledger / "0_0.done").is_file()
    again = pickle.loads(pickle.dumps(again))  # what a dask worker gets
    for y, x in [(0, 256), (256, 0), (256, 256)]:
        again.write_image(y, x, image[:, y : y + 256, x : x + 256])
        again.write_labels(y, x, labels[y : y + 256, x : x + 256])

    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(slides, "_replace_folder", killed)
    with pytest.raises(KeyboardInterrupt):  # killed in finish(), after the pyramid, before the rename
        again.finish()
    monkeypatch.undo()
    assert not path.exists()
    OmeZarrWriter(path, SHAPE, **arguments).finish()
    np.testing.assert_array_equal(open_slide(path).array.compute(), image)
    np.testing.assert_array_equal(open_slide(path / "labels" / "nuclei").array.compute()[0], labels)
    assert not (path / "blocks").exists() and not (path / "writer.json").exists()


def test_writer_refuses_overwriting_unless_asked_and_replaces_only_at_finish(tmp_path):
    path = tmp_path / "out.ome.zarr"
    old = _pixels((1, 64, 64), seed=1)
    writer = OmeZarrWriter(path, (64, 64), image=("uint16", 1), chunk=32)
    writer.write_image(0, 0, old)
    writer.finish()
    with pytest.raises(FileExistsError, match=r"out\.ome\.zarr: exists"):
        OmeZarrWriter(path, (64, 64), image=("uint16", 1), chunk=32)
    new = _pixels((1, 64, 64), seed=2)
    writer = OmeZarrWriter(path, (64, 64), image=("uint16", 1), chunk=32, overwrite=True, ngff="0.5")
    writer.write_image(0, 0, new)
    np.testing.assert_array_equal(open_slide(path).array.compute(), old)  # the old store is intact until finish
    writer.finish()
    np.testing.assert_array_equal(open_slide(path).array.compute(), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]


def test_writer_refuses_misaligned_blocks_and_lossy_casts(tmp_path):
    writer = OmeZarrWriter(tmp_path / "out.zarr", SHAPE, image=("uint16", 1), labels=("cells", "uint16"), chunk=CHUNK)
    with pytest.raises(ValueError, match=r"out\.zarr: block y 64:192 .* chunk grid of 128"):
        writer.write_image(64, 0, np.zeros((1, 128, 128), np.uint16))
    with pytest.raises(ValueError, match=r"block x 384:512 of a side 500"):
        writer.write_image(0, 384, np.zeros((1, 128, 128), np.uint16))
    writer.write_image(256, 384, np.ones((1, 44, 116), np.uint16))  # the edge block
    with pytest.raises(ValueError, match=r"float64 for a uint16 store; round it first"):
        writer.write_image(0, 0, np.zeros((1, 128, 128)))
    with pytest.raises(ValueError, match=r"labels values 70000\.\.70000 do not fit the store's uint16"):
        writer.write_labels(0, 0, np.full((128, 128), 70000))
    with pytest.raises(ValueError, match=r"image block of shape \(2, 128, 128\), expected \(1, h, w\)"):
        writer.write_image(0, 0, np.zeros((2, 128, 128), np.uint16))


# -------------------------------------------------------------------------------------------------- cell table


def test_the_cell_table_is_written_with_areas_in_square_micrometres(tmp_path):
    labels = SyntheticSlide((120, 150), seed=4).labels(0, 0, 120, 150)
    rows = [(p.label, p.area, *p.centroid, *p.bbox) for p in regionprops(labels.astype(np.int64))]
    table = write_cell_table(tmp_path / "out_cells.csv", rows, pixel_size=(0.5, 0.25))
    with open(table) as file:
        read = list(csv.DictReader(file))
    assert list(read[0]) == [
        "id",
        "area",
        "centroid_y",
        "centroid_x",
        "bbox_y0",
        "bbox_x0",
        "bbox_y1",
        "bbox_x1",
        "area_um2",
    ]
    assert [int(r["id"]) for r in read] == [row[0] for row in rows]
    assert [float(r["area_um2"]) for r in read] == pytest.approx([row[1] * 0.125 for row in rows])
    write_cell_table(tmp_path / "plain.csv", [dict(zip(["id", "area", "centroid_y", "centroid_x", "bbox_y0",
                     "bbox_x0", "bbox_y1", "bbox_x1"], rows[0]))], pixel_size=None)  # fmt: skip
    assert (tmp_path / "plain.csv").read_text().splitlines()[0].split(",")[-1] == "bbox_x1"


# ------------------------------------------------------------------------------------------------- TIFF export


def test_tiff_export_has_the_store_levels_values_and_pixel_size(tmp_path):
    image, labels = _pixels((2, *SHAPE)), _labels(SHAPE)
    store = tmp_path / "out.ome.zarr"
    writer = OmeZarrWriter(
        store, SHAPE, image=("uint16", 2, ["dapi", "gfp"]), labels=("cells", "uint32"), chunk=CHUNK,
        pixel_size=(0.5, 0.25),
    )  # fmt: skip
    _write_all(writer, image, labels)
    writer.finish()
    tiff_path = tiff_from_zarr(store, tmp_path / "out.ome.tif", tile=256)
    with tifffile.TiffFile(tiff_path) as tiff:
        assert tiff.is_bigtiff and tiff.is_ome and tiff.pages.first.is_tiled and tiff.pages.first.tilewidth == 256
        levels = tiff.series[0].levels
        assert [level.shape for level in levels] == [(2, 300, 500), (2, 150, 250), (2, 75, 125)]
        np.testing.assert_array_equal(levels[0].asarray(), image)
        np.testing.assert_array_equal(levels[1].asarray(), _mean_2x2(image))
        assert "dapi" in tiff.ome_metadata
    assert read_pixel_size(tiff_path) == pytest.approx((0.5, 0.25))
    assert open_slide(tiff_path, 2).pixel_size == pytest.approx((2.0, 1.0))
    with pytest.raises(FileExistsError, match=r"out\.ome\.tif: exists"):
        tiff_from_zarr(store, tmp_path / "out.ome.tif")
    label_tiff = tiff_from_zarr(store, tmp_path / "cells.ome.tif", labels="cells", tile=256)
    with tifffile.TiffFile(label_tiff) as tiff:
        np.testing.assert_array_equal(tiff.series[0].levels[2].asarray(), labels[::4, ::4])  # C = 1 squeezed
    assert not list(tmp_path.glob(".*partial"))


# ---------------------------------------------------------------------------------------------- synthetic slides


def test_synthetic_slides_are_the_same_whatever_region_draws_them():
    slide = SyntheticSlide((200, 260), seed=5, channels=2, z_planes=2, seam_every=128)
    image, labels = slide.image(0, 0, 200, 260), slide.labels(0, 0, 200, 260)
    assert image.shape == (4, 200, 260) and image.dtype == np.uint16 and image[0].std() > 100
    np.testing.assert_array_equal(slide.image(70, 130, 61, 77), image[:, 70:131, 130:207])
    np.testing.assert_array_equal(slide.labels(70, 130, 61, 77), labels[70:131, 130:207])
    np.testing.assert_array_equal(slide.image(70, 130, 61, 77, planes=[3]), image[3:, 70:131, 130:207])
    assert 0.3 < (labels > 0).mean() < 0.8  # crowded but not confluent
    nuclei = image[0].astype(float)
    assert nuclei[labels > 0].mean() > nuclei[labels == 0].mean() + 1000


@pytest.mark.parametrize("fmt", ["ome-zarr-0.4", "ome-zarr-0.5", "tiff", "ome-tiff"])
def test_write_slide_formats_read_back(tmp_path, fmt):
    path = tmp_path / ("slide.ome.zarr" if "zarr" in fmt else "slide.tif")
    labels = write_slide(path, (160, 200), format=fmt, chunk=64, pixel_size=(0.4, 0.4), channels=2, levels=2,
                         seed=2, return_labels=True)  # fmt: skip
    spec = SyntheticSlide((160, 200), seed=2, channels=2)
    np.testing.assert_array_equal(labels, spec.labels(0, 0, 160, 200))
    slide = open_slide(path)
    assert slide.levels == 2 and slide.pixel_size == pytest.approx((0.4, 0.4))
    np.testing.assert_array_equal(slide.array.compute(), spec.image(0, 0, 160, 200))
    np.testing.assert_array_equal(open_slide(path, 1).array.compute(), _mean_2x2(spec.image(0, 0, 160, 200)))
    with pytest.raises(FileExistsError, match="slide"):
        write_slide(path, 64, format=fmt)


def test_single_level_tiff_slides_keep_focal_planes_as_z(tmp_path):
    write_slide(tmp_path / "z.ome.tif", (96, 80), format="ome-tiff", chunk=32, channels=2, z_planes=3, dtype="uint8")
    with tifffile.TiffFile(tmp_path / "z.ome.tif") as tiff:
        assert tiff.series[0].axes == "CZYX" and tiff.pages.first.is_tiled
    slide = open_slide(tmp_path / "z.ome.tif")
    spec = SyntheticSlide((96, 80), channels=2, z_planes=3, dtype="uint8")
    np.testing.assert_array_equal(slide.array.compute(), spec.image(0, 0, 96, 80))
    assert slide.channel_names == spec.channel_names == [f"{c} z{z}" for c in ("nuclei", "membranes") for z in range(3)]


def test_seam_cells_sit_on_the_block_grid_and_are_counted(tmp_path):
    block = 128
    slide = SyntheticSlide((384, 384), seed=1, seam_every=block)
    labels = slide.labels(0, 0, 384, 384)
    crossing = set()
    for line in (128, 256):  # independent count on the whole labels: same id on both sides of a seam line
        for before, after in ((labels[line - 1], labels[line]), (labels[:, line - 1], labels[:, line])):
            crossing |= set(before[(before == after) & (before > 0)].tolist())
    assert slide.seam_crossings() == seam_crossings(384, block, seed=1) == len(crossing)
    cells_per_line = 384 / slide.spacing
    assert len(crossing) > 4 * 0.6 * cells_per_line  # four seam lines, most grid places along them hold a cell
    unaligned = SyntheticSlide((384, 384), seed=1).seam_crossings(block)
    assert unaligned < len(crossing)


def test_synthetic_slide_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="format"):
        write_slide(tmp_path / "a.zarr", 64, format="png")
    with pytest.raises(ValueError, match="return_labels"):
        write_slide(tmp_path / "b.zarr", 10000, return_labels=True)
    with pytest.raises(ValueError, match="seam_every"):
        SyntheticSlide((64, 64), seam_every=8)
    assert not list(tmp_path.iterdir())
