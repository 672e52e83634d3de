"""Blockwise instance stitching: the assembled cores equal the whole image's labelling, ids are first-pixel indices."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import draw, measure

from common.data.scene import Morphology, render_scene
from common.slides import CELL_DTYPE, SeamError, label_dtype, seam_crossings, stitch_block


def _touching_cells(shape, seed):
    """(H, W) cells that touch each other, and the function labelling any crop of it on its own."""
    morphology = Morphology(cell_radius=(4.0, 8.0), coverage=0.5, touching=0.7)
    cells = render_scene(shape, morphology=morphology, seed=seed, fluorescence=()).labels
    return cells, lambda window: measure.label(cells[window], connectivity=1)


def _blobs(shape, seed):
    """(H, W) binary mask of overlapping disks (blobs of several disks), labelled by connected components."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for _ in range(shape[0] * shape[1] // 150):
        rows, cols = draw.disk(tuple(rng.uniform(0, shape)), rng.uniform(1.5, 4.5), shape=shape)
        mask[rows, cols] = True
    return mask, lambda window: ndimage.label(mask[window])[0]


def _scrambled(labels, rng, base):
    """The same instances under arbitrary local ids from ``base`` on (not raster ordered)."""
    count = int(labels.max())
    lut = np.concatenate([[0], rng.permutation(count) * 7 + base]).astype(np.int64)
    return lut[labels]


def _first_pixel_ids(reference):
    """(H, W) image of ``reference`` with each instance renamed 1 + raster index of its first pixel."""
    ids, first = np.unique(reference.ravel(), return_index=True)
    lut = np.zeros(int(ids.max()) + 1, np.int64)
    lut[ids] = first + 1
    lut[0] = 0
    return lut[reference]


def _run_blocks(label_region, shape, block, halo, rng):
    """Stitch every block of the grid: the assembled (H, W) image and the blocks' tables merged, sorted by id."""
    height, width = shape
    assembled = np.zeros(shape, np.int64)
    tables = []
    for y in range(0, height, block[0]):
        for x in range(0, width, block[1]):
            core_y, core_x = slice(y, min(y + block[0], height)), slice(x, min(x + block[1], width))
            oy, ox = max(0, y - halo), max(0, x - halo)
            window = (slice(oy, min(height, core_y.stop + halo)), slice(ox, min(width, core_x.stop + halo)))
            base = 1000 if (y // block[0] + x // block[1]) % 2 else 2**40  # dense and sparse local ids
            local = _scrambled(label_region(window), rng, base)
            core = (slice(y - oy, core_y.stop - oy), slice(x - ox, core_x.stop - ox))
            result = stitch_block(local, (oy, ox), core, shape)
            assert result.core_labels.dtype == np.uint32 and result.cells.dtype == CELL_DTYPE
            assembled[core_y, core_x] = result.core_labels
            tables.append(result.cells)
    cells = np.concatenate(tables)
    return assembled, cells[np.argsort(cells["id"])]


@pytest.mark.parametrize(
    ("scene", "shape", "seed"),
    [(_touching_cells, (90, 117), 0), (_touching_cells, (64, 64), 3), (_blobs, (83, 70), 1)],
)
def test_blockwise_equals_whole_image_labelling(scene, shape, seed):
    source, label_region = scene(shape, seed)
    whole = (slice(0, shape[0]), slice(0, shape[1]))
    reference = label_region(whole)
    expected = _first_pixel_ids(reference)
    extent = max(max(s.stop - s.start for s in box) for box in ndimage.find_objects(reference))
    properties = sorted(
        measure.regionprops(reference), key=lambda region: expected[region.coords[0][0], region.coords[0][1]]
    )
    rng = np.random.default_rng(seed)
    for block, extra in [((16, 16), 0), ((25, 19), 3), ((32, 50), 1), ((shape[0], 13), 0), (shape, 0)]:
        assembled, cells = _run_blocks(label_region, shape, block, extent + extra, rng)
        np.testing.assert_array_equal(assembled, expected, err_msg=f"block {block}, halo {extent + extra}")
        # the same partition as the reference, one id per cell: a bijection between the two labellings
        pairs = np.unique(np.stack([assembled[reference > 0], reference[reference > 0]]), axis=1)
        assert pairs.shape[1] == len(np.unique(assembled)) - 1 == reference.max()
        assert list(cells["id"]) == sorted(np.unique(expected)[1:]), "each cell listed exactly once, by id"
        np.testing.assert_array_equal(cells["area"], [region.area for region in properties])
        np.testing.assert_allclose(cells["centroid_y"], [region.centroid[0] for region in properties])
        np.testing.assert_allclose(cells["centroid_x"], [region.centroid[1] for region in properties])
        boxes = np.stack([cells[name] for name in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")], axis=1)
        np.testing.assert_array_equal(boxes, [region.bbox for region in properties])
    assert seam_crossings(reference, 16) > 5, "the scene has cells across the seams"


def _bar_slide():
    """(40, 60) slide with one bar cell 41 pixels wide and a small cell on the slide's edge."""
    slide = np.zeros((40, 60), np.int32)
    slide[10:13, 5:46] = 3
    slide[30:33, 0:4] = 9  # on the slide's left edge
    return slide


def test_cell_wider_than_the_halo_raises_seam_error():
    slide = _bar_slide()
    # block with core (0:20, 0:20), halo 8: region (0:28, 0:28); the bar touches the core and the region's right edge
    with pytest.raises(SeamError, match=r"core at \(0, 0\).*cell at \(10, 5\).*halo of 8 pixels") as error:
        stitch_block(slide[0:28, 0:28], (0, 0), (slice(0, 20), slice(0, 20)), slide.shape)
    assert isinstance(error.value, ValueError)
    # the next block sees the bar cut at both sides of its region
    with pytest.raises(SeamError, match=r"core at \(0, 20\).*region at \(0, 12\)"):
        stitch_block(slide[0:28, 12:48], (0, 12), (slice(0, 20), slice(8, 28)), slide.shape)


def test_cells_cut_outside_the_core_or_at_the_slide_edge_are_fine():
    slide = _bar_slide()
    # the bar lies on the region's inner top edge but outside the core: ignored; the small cell touches the region's
    # left and the core's edge, which are the slide's edge
    result = stitch_block(slide[10:40, 0:28], (10, 0), (slice(10, 30), slice(0, 20)), slide.shape)
    assert result.cells["id"].tolist() == [1 + 30 * 60]
    assert set(np.unique(result.core_labels)) == {0, 1 + 30 * 60}
    # a region wide enough sees the whole bar; torch (1, h, w) input works alike
    region = torch.from_numpy(slide[0:28, 0:52][None])
    result = stitch_block(region, (0, 0), (slice(0, 20), slice(0, 20)), slide.shape)
    assert result.cells.tolist() == [(1 + 10 * 60 + 5, 123, 11.0, 25.0, 10, 5, 13, 46)]
    np.testing.assert_array_equal(result.core_labels, np.where(slide[:20, :20] == 3, 1 + 10 * 60 + 5, 0))
    # a block of background only
    empty = stitch_block(slide[15:30, 30:60], (15, 30), (slice(5, 15), slice(10, 30)), slide.shape)
    assert empty.cells.shape == (0,) and empty.core_labels.shape == (10, 20) and not empty.core_labels.any()


def test_label_dtype_switches_at_2_to_the_32_pixels():
    assert label_dtype((65537, 65535)) == np.uint32  # H * W = 2**32 - 1, the largest id
    assert label_dtype((1, 2**32 - 1)) == np.uint32
    assert label_dtype((65536, 65536)) == np.uint64
    assert label_dtype((1, 2**32)) == np.uint64
    # ids beyond 2**32 are exact in a small region near the end of a large slide
    labels = np.zeros((4, 5), np.int32)
    labels[1:3, 2:4] = 7
    slide_shape = (70000, 70001)
    result = stitch_block(labels, (69990, 69000), (slice(0, 4), slice(0, 5)), slide_shape)
    assert result.core_labels.dtype == np.uint64
    assert result.cells["id"].tolist() == [1 + 69991 * 70001 + 69002]
    assert result.core_labels[1, 2] == 1 + 69991 * 70001 + 69002 > 2**32


def test_bad_regions_are_refused():
    labels = np.zeros((10, 10), np.int32)
    with pytest.raises(ValueError, match="offset"):
        stitch_block(labels, (5, 0), (slice(0, 10), slice(0, 10)), (12, 12))
    with pytest.raises(ValueError, match="core"):
        stitch_block(labels, (0, 0), (slice(3, 3), slice(0, 10)), (12, 12))


def _crossings_by_pixels(labels, size_y, size_x):
    """Plain count: cells whose pixels fall in more than one (y // size_y, x // size_x) block."""
    rows, cols = np.nonzero(labels)
    blocks = {}
    for label, row, col in zip(labels[rows, cols], rows, cols):
        blocks.setdefault(label, set()).add((row // size_y, col // size_x))
    return sum(len(found) > 1 for found in blocks.values())


def test_seam_crossings_counts_cells_spanning_blocks():
    labels = np.zeros((8, 8), np.int32)
    labels[0:2, 0:2] = 1  # inside block (0, 0)
    labels[2:4, 3:5] = 2  # across the vertical seam at x = 4
    labels[3:6, 6] = 5  # across the horizontal seam at y = 4
    assert seam_crossings(labels, 4) == 2
    assert seam_crossings(labels, (8, 4)) == 1
    cells = render_scene((70, 90), morphology=Morphology(cell_radius=(4.0, 8.0)), seed=5, fluorescence=()).labels
    for block in [16, (10, 25), 128]:
        size_y, size_x = (block, block) if isinstance(block, int) else block
        assert seam_crossings(cells, block) == _crossings_by_pixels(cells, size_y, size_x)
    with pytest.raises(ValueError, match="block_size"):
        seam_crossings(labels, (4, 4, 4))
