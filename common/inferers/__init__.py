"""Inferers of the collection: test-time augmentation."""

from .tta import DihedralTTAInferer, dihedral_elements
from .channel_sources import ChannelSourcesInferer
