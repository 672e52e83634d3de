"""Inferers of the collection: test-time augmentation."""

from .tta import DihedralTTAInferer, dihedral_elements
