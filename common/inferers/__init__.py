"""Inferers of the collection: test-time augmentation."""

from .channel_sources import ChannelSourcesInferer
from .tta import DihedralTTAInferer, dihedral_elements
