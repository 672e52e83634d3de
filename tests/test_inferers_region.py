"""A block predicted with the whole slide's windows equals the in-memory prediction on the block's core."""

import pytest
import torch
from monai.inferers import SlidingWindowInferer

from common.inferers import DihedralTTAInferer, RegionSlidingWindowInferer, SlideRegion, with_region


def _network() -> torch.nn.Module:
    """A small CNN whose output depends on where a pixel sits in its window (zero padding, three layers)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 5, padding=2), torch.nn.Tanh(), torch.nn.Conv2d(4, 3, 5, padding=2)
    ).eval()


def _blockwise(inferer, image: torch.Tensor, network, block: int, halo: int) -> torch.Tensor:
    """Each block's core from a prediction of the block grown by ``halo``, the region told to the inferer."""
    height, width = image.shape[-2:]
    out = torch.full((1, 3, height, width), float("nan"))
    for y in range(0, height, block):
        for x in range(0, width, block):
            y0, x0 = max(y - halo, 0), max(x - halo, 0)
            y1, x1 = min(y + block + halo, height), min(x + block + halo, width)
            region = with_region(image[..., y0:y1, x0:x1], SlideRegion((y0, x0), (height, width)))
            predicted = inferer(region, network)
            ys, xs = slice(y - y0, min(y + block, height) - y0), slice(x - x0, min(x + block, width) - x0)
            out[..., y : y + block, x : x + block] = predicted[..., ys, xs]
    return out


@pytest.mark.parametrize("mode,overlap", [("constant", 0.25), ("gaussian", 0.6), ("constant", 0.0)])
def test_blocks_equal_the_whole_image(mode, overlap):
    image = torch.rand(1, 2, 101, 141)
    network = _network()
    settings = {"roi_size": (32, 32), "sw_batch_size": 3, "overlap": overlap, "mode": mode}
    with torch.no_grad():
        whole = SlidingWindowInferer(**settings)(image, network)
        region = RegionSlidingWindowInferer(**settings)
        blocks = _blockwise(region, image, network, block=40, halo=31)
        # the same inferer without region meta data is MONAI's
        torch.testing.assert_close(region(image, network), whole, rtol=0, atol=0)
        # a halo shorter than the window leaves core pixels predicted from other windows
        short = _blockwise(region, image, network, block=40, halo=16)
    torch.testing.assert_close(blocks, whole, rtol=1e-5, atol=1e-6)
    assert (short - whole).abs().max() > 1e-3


@pytest.mark.parametrize("group", ["flips", "d4"])
def test_test_time_augmentation_moves_the_region_with_the_image(group):
    image = torch.rand(1, 2, 90, 70)
    network = _network()
    settings = {"roi_size": (24, 24), "sw_batch_size": 4, "overlap": 0.5, "mode": "gaussian"}
    with torch.no_grad():
        whole = DihedralTTAInferer(SlidingWindowInferer(**settings), group=group, vector_channels=(0, 1))(
            image, network
        )
        tta = DihedralTTAInferer(RegionSlidingWindowInferer(**settings), group=group, vector_channels=(0, 1))
        blocks = _blockwise(tta, image, network, block=32, halo=23)
    torch.testing.assert_close(blocks, whole, rtol=1e-5, atol=1e-6)


def test_region_moves_as_the_dihedral_element_moves_the_slide():
    slide = torch.arange(6 * 9).reshape(6, 9)
    region = SlideRegion((1, 2), (6, 9))
    block = slide[1:4, 2:7]
    for element in [(t, fy, fx) for t in (False, True) for fy in (False, True) for fx in (False, True)]:
        transpose, flip_y, flip_x = element
        moved_slide, moved_block = (slide.T, block.T) if transpose else (slide, block)
        dims = [d for d, f in ((0, flip_y), (1, flip_x)) if f]
        moved_slide = torch.flip(moved_slide, dims) if dims else moved_slide
        moved_block = torch.flip(moved_block, dims) if dims else moved_block
        moved = region.moved(element, (3, 5))
        (y0, x0), (h, w) = moved.offset, moved_block.shape
        assert moved.slide_shape == tuple(moved_slide.shape)
        assert torch.equal(moved_slide[y0 : y0 + h, x0 : x0 + w], moved_block), element
