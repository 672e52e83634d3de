"""Datalists of instance-segmentation datasets in their publishers' layouts: DSB 2018, BBBC039, NeurIPS 2022.

Every builder returns items ``{"image": str, "label": ..., "id": str}`` sorted by id, with paths as str, and
raises :class:`LayoutError` naming the folder or file when the layout is not as published. ``label`` is what
:class:`common.io.LoadInstanceLabelsd` reads: a sorted list of mask files (DSB 2018) or one file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from .errors import LayoutError
from .images import image_suffix as file_suffix
from .images import is_image_file

__all__ = ["dsb2018_datalist", "bbbc039_datalist", "neurips_datalist", "BBBC039_SPLITS"]

PathLike = Union[str, os.PathLike]

BBBC039_SPLITS = ("training", "validation", "test")


def _existing_folder(path: Path, what: str) -> Path:
    """``path`` when it is a folder, else a LayoutError naming it as ``what``."""
    if not path.is_dir():
        raise LayoutError(f"{path}: {what} not found.")
    return path


def _image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(path for path in folder.iterdir() if path.is_file() and is_image_file(path))


# ----------------------------------------------------------------------------------------------- DSB 2018


def dsb2018_datalist(root: PathLike, stage: str = "stage1_train", require_labels: bool = True) -> list[dict]:
    """Items of a Data Science Bowl 2018 stage: ``<stage>/<id>/images/<id>.png`` and ``<id>/masks/*.png``.

    Args:
        root: the dataset root holding ``<stage>/``, or the stage folder itself.
        stage: stage folder name (``stage1_train``, ``stage1_test``, ``stage2_test_final``).
        require_labels: a sample without ``masks/`` or with no mask is an error; when False such items simply
            have no ``"label"`` (test stages).

    Returns:
        ``{"image": str, "label": [str, ...] sorted mask files, "id": str}`` per sample, sorted by id.
    """
    stage_dir = _dsb2018_stage_folder(Path(root), stage)
    samples = sorted(path for path in stage_dir.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not samples:
        raise LayoutError(f"{stage_dir}: no sample folders, expected <id>/images/<id>.png inside.")
    return [_dsb2018_item(sample, require_labels) for sample in samples]


def _dsb2018_stage_folder(root: Path, stage: str) -> Path:
    """``root/stage`` or, when ``root`` already is a stage folder (samples with ``images/``), ``root``."""
    _existing_folder(root, "DSB 2018 dataset folder")
    if (root / stage).is_dir():
        return root / stage
    if any((child / "images").is_dir() for child in root.iterdir() if child.is_dir()):
        return root
    raise LayoutError(f"{root / stage}: DSB 2018 stage folder not found (nor sample folders with images/ in {root}).")


def _dsb2018_item(sample: Path, require_labels: bool) -> dict:
    """The item of one DSB 2018 sample folder ``<id>/``."""
    image = sample / "images" / f"{sample.name}.png"
    if not image.is_file():
        raise LayoutError(f"{sample}: image {image} not found, expected images/{sample.name}.png.")
    item: dict[str, str | list[str]] = {"image": str(image), "id": sample.name}
    masks_dir = sample / "masks"
    masks = _image_files(masks_dir) if masks_dir.is_dir() else []
    if masks:
        item["label"] = [str(mask) for mask in masks]
    elif require_labels:
        raise LayoutError(f"{masks_dir}: no mask files, expected masks/*.png with one object each.")
    return item


# ----------------------------------------------------------------------------------------------- BBBC039


def bbbc039_datalist(root: PathLike, split: str | None = "training") -> list[dict]:
    """Items of BBBC039: ``images/<name>.tif``, colour-coded ``masks/<name>.png``, ``metadata/<split>.txt``.

    Args:
        root: the folder holding ``images/``, ``masks/`` and ``metadata/``.
        split: ``"training"``, ``"validation"`` or ``"test"`` (the mask names listed in
            ``metadata/<split>.txt``), or None for every image in ``images/``.

    Returns:
        ``{"image": str, "label": str, "id": <name>}`` per image, sorted by name.
    """
    root = _existing_folder(Path(root), "BBBC039 dataset folder")
    images_dir = _existing_folder(root / "images", "BBBC039 images folder")
    masks_dir = _existing_folder(root / "masks", "BBBC039 masks folder")
    names = _bbbc039_split_names(root, split) if split is not None else _bbbc039_all_names(images_dir)
    if not names:
        raise LayoutError(f"{root}: no BBBC039 images for split {split!r}.")
    return [_bbbc039_item(images_dir, masks_dir, name) for name in names]


def _bbbc039_split_names(root: Path, split: str) -> list[str]:
    """Sorted image names (without suffix) listed in ``metadata/<split>.txt``."""
    if split not in BBBC039_SPLITS:
        raise ValueError(f"split: unknown BBBC039 split {split!r}, expected one of {BBBC039_SPLITS} or None.")
    listing = root / "metadata" / f"{split}.txt"
    if not listing.is_file():
        raise LayoutError(f"{listing}: BBBC039 split file not found.")
    lines = (line.strip() for line in listing.read_text().splitlines())
    return sorted({line[: -len(".png")] if line.endswith(".png") else line for line in lines if line})


def _bbbc039_all_names(images_dir: Path) -> list[str]:
    """Sorted names (without suffix) of the TIFF images in ``images_dir``."""
    return [path.name[: -len(".tif")] for path in _image_files(images_dir) if file_suffix(path) == ".tif"]


def _bbbc039_item(images_dir: Path, masks_dir: Path, name: str) -> dict:
    """The item of BBBC039 image ``name``."""
    image, mask = images_dir / f"{name}.tif", masks_dir / f"{name}.png"
    for path in (image, mask):
        if not path.is_file():
            raise LayoutError(f"{path}: file of BBBC039 image {name!r} not found.")
    return {"image": str(image), "label": str(mask), "id": name}


# ----------------------------------------------------------------------------------------------- NeurIPS 2022


def neurips_datalist(
    root: PathLike,
    image_dir: str = "images",
    label_dir: str = "labels",
    require_labels: bool = True,
    image_suffix: str = "",
    label_suffix: str = "_label",
    label_ext: str = ".tiff",
) -> list[dict]:
    """Items of a folder pair of images and label images named after them (NeurIPS 2022 cell segmentation).

    NeurIPS: ``images/cell_00001.<png|tif|tiff|bmp|jpg|jpeg>`` with ``labels/cell_00001_label.tiff``. Other
    public datasets given as (image folder, label folder) pairs fit by their naming: the label of image
    ``<id><image_suffix>.<ext>`` is ``<label_dir>/<id><label_suffix><label_ext>``. Both may share a folder
    (cellpose: ``image_dir=label_dir="train", image_suffix="_img", label_suffix="_masks", label_ext=".png"``);
    files named like labels are then not taken as images.

    Args:
        root: the folder holding ``image_dir`` and ``label_dir``.
        image_dir, label_dir: sub-folders of images and of label images.
        require_labels: an image without its label file is an error; when False its item has no ``"label"``.
        image_suffix: end of an image's name before its extension, removed to give its id.
        label_suffix, label_ext: what follows the id in a label file's name.

    Returns:
        ``{"image": str, "label": str, "id": str}`` per image, sorted by id.
    """
    root = _existing_folder(Path(root), "dataset folder")
    images_folder = _existing_folder(root / image_dir, "image folder")
    labels_folder = root / label_dir
    images = _named_images(images_folder, image_suffix, label_suffix if images_folder == labels_folder else None)
    if not images:
        raise LayoutError(f"{images_folder}: no images, expected files like cell_00001{image_suffix}.png.")
    items = []
    for sample_id, image in sorted(images.items()):
        item = {"image": str(image), "id": sample_id}
        label = labels_folder / f"{sample_id}{label_suffix}{label_ext}"
        if label.is_file():
            item["label"] = str(label)
        elif require_labels:
            raise LayoutError(f"{label}: label file of image {image} not found.")
        items.append(item)
    return items


def _named_images(folder: Path, image_suffix: str, label_suffix: str | None) -> dict[str, Path]:
    """Images of ``folder`` by id (name without extension and ``image_suffix``), skipping names ending with
    ``label_suffix``; two images of one id are an error."""
    images: dict[str, Path] = {}
    for path in _image_files(folder):
        stem = path.name[: -len(file_suffix(path))]
        if not stem.endswith(image_suffix) or (label_suffix and stem.endswith(label_suffix)):
            continue
        sample_id = stem[: len(stem) - len(image_suffix)]
        if sample_id in images:
            raise LayoutError(f"{path}: second image of id {sample_id!r} (first {images[sample_id]}).")
        images[sample_id] = path
    return images
