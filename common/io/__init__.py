"""Readers and writers of microscopy files, and one datalist builder per published dataset layout."""

from .challenge_layouts import (
    LMC_ORGANELLES,
    adipocyte_channel_names,
    adipocyte_datalist,
    adipocyte_model_name,
    adipocyte_pairs,
    adipocyte_split,
    adipocyte_split_part,
    livecell_datalist,
    livecell_name_fields,
    lmc_channels,
    lmc_datalist,
    lmc_output_folders,
    lmc_slices,
    lmc_split,
    read_lmc_best_z,
)
from .channel_writer import SaveChannelsd
from .coco import CocoIndex, CocoPolygonsToMask, CocoPolygonsToMaskd, load_coco, polygons_to_labels, polygons_to_mask
from .datalist import LAYOUTS, SPLITS, build_datalist, dataset_split, image_folder_datalist, split_datalist
from .errors import DataError, ImageFileError, LayoutError
from .images import (
    IMAGE_SUFFIXES,
    MicroscopyReader,
    image_suffix,
    is_image_file,
    read_image,
    read_pixel_size,
    read_tiff_shape,
    write_image,
    write_ome_tiff,
)
from .labels import (
    LoadInstanceLabels,
    LoadInstanceLabelsd,
    labels_from_colour_image,
    labels_from_grey_image,
    labels_from_mask_files,
    read_instance_labels,
)
from .segmentation_layouts import BBBC039_SPLITS, bbbc039_datalist, dsb2018_datalist, neurips_datalist
from .slides import (
    CELL_COLUMNS,
    ImageSpec,
    LabelSpec,
    OmeZarrWriter,
    Slide,
    open_slide,
    tiff_from_zarr,
    write_cell_table,
)
from .writers import SaveChannelFoldersd, SaveImageFiled, label_dtype, mask_to_uint8
