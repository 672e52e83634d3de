"""Readers and writers of microscopy files, and one datalist builder per published dataset layout."""

from .datalist import LAYOUTS, build_datalist, split_datalist
from .errors import DataError, ImageFileError, LayoutError
