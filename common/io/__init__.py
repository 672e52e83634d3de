"""Readers and writers of microscopy files, and one datalist builder per published dataset layout."""

from .datalist import LAYOUTS, SPLITS, build_datalist, dataset_split, image_folder_datalist, split_datalist
from .errors import DataError, ImageFileError, LayoutError
from .images import MicroscopyReader, read_image, read_pixel_size, write_image, write_ome_tiff
from .labels import LoadInstanceLabels, LoadInstanceLabelsd, read_instance_labels
from .writers import SaveImageFiled, label_dtype
