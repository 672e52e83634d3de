"""Inferers of the collection: test-time augmentation, channel sources, sliding windows over a block of a slide."""

from .channel_sources import ChannelSourcesInferer
from .region import RegionSlidingWindowInferer, SlideRegion, region_of, with_region
from .tta import DihedralTTAInferer, dihedral_elements
