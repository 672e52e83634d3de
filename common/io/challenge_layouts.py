"""Datalists of the image-to-image and semantic-segmentation datasets in their publishers' layouts.

* LIVECell (Sartorius): phase-contrast images and COCO polygon annotations -> :func:`livecell_datalist`.
* Light My Cells (LMC, France-BioImaging): transmitted-light z-slices and organelle targets, OME-TIFF, one
  folder per study -> :func:`lmc_datalist`, split by :func:`lmc_split`, one item per slice by :func:`lmc_slices`;
  the best focal plane of each image from the challenge's table by :func:`read_lmc_best_z`.
* Adipocyte Cell Imaging Challenge (AstraZeneca/AI Sweden): 7-plane brightfield stacks and three fluorescence
  targets per field of view, one folder per magnification -> :func:`adipocyte_datalist`, split by
  :func:`adipocyte_split`.

Every builder returns items sorted in a deterministic order with paths as str, and raises
:class:`LayoutError` naming the folder or files when the data do not follow the published layout; problems of
several files are gathered in one message.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Union

from .coco import CocoIndex, load_coco
from .datalist import SPLITS, split_datalist
from .errors import ImageFileError, LayoutError
from .images import read_tiff_shape

__all__ = [
    "livecell_datalist",
    "livecell_name_fields",
    "lmc_datalist",
    "lmc_split",
    "lmc_slices",
    "lmc_channels",
    "lmc_output_folders",
    "read_lmc_best_z",
    "adipocyte_datalist",
    "adipocyte_split",
    "adipocyte_split_part",
    "adipocyte_pairs",
    "adipocyte_model_name",
    "adipocyte_channel_names",
    "LIVECELL_SPLITS",
    "LMC_MODALITIES",
    "LMC_ORGANELLES",
    "ADIPOCYTE_TARGETS",
    "ADIPOCYTE_Z_PLANES",
]

PathLike = Union[str, os.PathLike]

#: names a message lists before summarising the rest as a count.
_LISTED = 10
#: threads reading file headers (the reads wait on storage more than on Python).
_CHECK_THREADS = 8


def _existing_folder(path: Path, what: str) -> Path:
    """``path`` when it is a folder, else a LayoutError naming it as ``what``."""
    if not path.is_dir():
        raise LayoutError(f"{path}: {what} not found.")
    return path


def _listing(names: Sequence[str], limit: int | None = _LISTED) -> str:
    """``names`` joined by commas, the ones past ``limit`` (None: no limit) summarised as a count."""
    shown = list(names) if limit is None else list(names)[:limit]
    rest = len(names) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest else "")


def _is_tiff(path: Path) -> bool:
    return not path.name.startswith(".") and path.name.lower().endswith((".tif", ".tiff"))


# ----------------------------------------------------------------------------------------------- LIVECell

LIVECELL_SPLITS = ("train", "val", "test")
#: the project's split names (:data:`common.io.datalist.SPLITS`) -> LIVECell's.
_LIVECELL_SPLIT_ALIASES = {"training": "train", "validation": "val"}
_LIVECELL_IMAGE_FOLDERS = {
    "train": "livecell_train_val_images",
    "val": "livecell_train_val_images",
    "test": "livecell_test_images",
}
#: ``<CellType>_Phase_<Well>_<Location>_<ddDhhHmmM>_<crop>``, e.g. ``A172_Phase_A7_1_00d00h00m_1``.
_LIVECELL_NAME = re.compile(r"^(?P<cell_type>[A-Za-z0-9-]+)_Phase_[A-Z]\d+_\d+_\d+d\d+h\d+m_\d+$")


def livecell_datalist(
    root: PathLike, split: str = "train", exclude: PathLike | None = None, annotation_file: PathLike | None = None
) -> list[dict]:
    """Items of one LIVECell split, laid out as Sartorius distributes it.

    Layout: ``root/livecell_coco_<split>.json`` (COCO, annotations as a list or keyed by id) and the images in
    ``root/images/livecell_train_val_images/`` (train and val) or ``root/images/livecell_test_images/``, either
    directly or in one sub-folder per cell type (``<CellType>/<name>.tif``).

    Args:
        root: the dataset folder.
        split: ``"train"``, ``"val"`` or ``"test"`` (``"training"`` and ``"validation"`` are accepted too).
        exclude: text file of image names to drop (duplicates, images shared by train and val), one per line,
            with or without ``.tif``; ``#`` starts a comment.
        annotation_file: the COCO file, absolute or relative to ``root``; default
            ``livecell_coco_<split>.json`` (the LIVECell download also has it under ``annotations/LIVECell/``).

    Returns:
        ``{"image": str, "polygons": [segmentation, ...], "height": int, "width": int, "cell_type": str,
        "id": str}`` per annotated image, sorted by id (the file name without ``.tif``). ``polygons`` holds
        each annotation's COCO ``segmentation`` (a list of ``[x0, y0, x1, y1, ...]`` parts), for
        :class:`common.io.coco.CocoPolygonsToMaskd`. Images without annotations are skipped with a warning.

    Raises:
        LayoutError: missing folder or annotation file, an annotated image missing on disk or stored twice,
            a file name not following the LIVECell pattern, or no annotated image at all.
    """
    split = _LIVECELL_SPLIT_ALIASES.get(split, split)
    if split not in LIVECELL_SPLITS:
        raise ValueError(f"split: expected one of {LIVECELL_SPLITS}, got {split!r}.")
    root = _existing_folder(Path(root), "LIVECell dataset folder")
    coco = load_coco(root / (annotation_file or f"livecell_coco_{split}.json"))
    image_folder = _existing_folder(root / "images" / _LIVECELL_IMAGE_FOLDERS[split], "LIVECell image folder")
    on_disk = _files_by_name(image_folder)
    excluded = _read_name_list(exclude) if exclude is not None else set()
    names = sorted(name for name in coco.images if _stem(name) not in excluded)
    _warn_unannotated([name for name in names if name not in coco.annotations], coco.path)
    annotated = [name for name in names if name in coco.annotations]
    if not annotated:
        raise LayoutError(f"{coco.path}: no annotated image left for split {split!r}.")
    paths = _resolve_images(annotated, on_disk, coco.path)
    cell_types = _livecell_cell_types(annotated, coco.path)
    return [_livecell_item(coco, name, paths[name], cell_types[name]) for name in annotated]


def _livecell_item(coco: CocoIndex, name: str, path: Path, cell_type: str) -> dict:
    """The datalist item of one annotated LIVECell image."""
    image = coco.images[name]
    return {
        "image": str(path),
        "polygons": coco.segmentations(name),
        "height": int(image["height"]),
        "width": int(image["width"]),
        "cell_type": cell_type,
        "id": _stem(name),
    }


def _stem(name: str) -> str:
    """A LIVECell image name without its TIFF suffix."""
    return re.sub(r"\.tiff?$", "", name, flags=re.IGNORECASE)


def _files_by_name(folder: Path) -> dict[str, list[Path]]:
    """File name -> every file of that name under ``folder`` (sub-folders included)."""
    files: dict[str, list[Path]] = defaultdict(list)
    for directory, _, names in os.walk(folder):
        for name in names:
            files[name].append(Path(directory) / name)
    return files


def _read_name_list(path: PathLike) -> set[str]:
    """Image names (without TIFF suffix or folder) listed in a text file, one per line, ``#`` comments."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: exclude list not found.")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {_stem(Path(line).name) for line in lines if line}


def _warn_unannotated(names: Sequence[str], annotation_path: str) -> None:
    """Warn that the images ``names`` are skipped because they have no annotation."""
    if names:
        warnings.warn(
            f"{annotation_path}: skipped {len(names)} image(s) without annotations: {_listing(names)}.", stacklevel=3
        )


def _resolve_images(names: Sequence[str], on_disk: dict[str, list[Path]], annotation_path: str) -> dict[str, Path]:
    """The file of each image name, or a LayoutError naming the missing or repeated ones."""
    missing = [name for name in names if name not in on_disk]
    if missing:
        raise LayoutError(
            f"{annotation_path}: {len(missing)} annotated image(s) not found on disk: {_listing(missing)}."
        )
    repeated = [name for name in names if len(on_disk[name]) > 1]
    if repeated:
        raise LayoutError(f"images stored more than once: {_listing([str(p) for n in repeated for p in on_disk[n]])}.")
    return {name: on_disk[name][0] for name in names}


def _livecell_cell_types(names: Sequence[str], annotation_path: str) -> dict[str, str]:
    """Cell type of each image name, read from the LIVECell naming pattern."""
    matches = {name: _LIVECELL_NAME.match(_stem(name)) for name in names}
    found = {name: match for name, match in matches.items() if match is not None}
    unmatched = [name for name in matches if name not in found]
    if unmatched:
        raise LayoutError(
            f"{annotation_path}: image names not of the form "
            f"<CellType>_Phase_<Well>_<Location>_<ddDhhHmmM>_<crop>.tif: {_listing(unmatched)}."
        )
    return {name: match["cell_type"] for name, match in found.items()}


def livecell_name_fields(name: str) -> dict[str, str]:
    """``{"cell_type": ...}`` read from a LIVECell image name (folders and suffix allowed), ``{}`` for other names.

    For per-cell-type evaluation reports (``fields_from_name`` of
    :class:`common.handlers.SemanticSegmentationReport`), which also see images not named the LIVECell way.
    """
    match = _LIVECELL_NAME.match(_stem(Path(name).name))
    return {"cell_type": match["cell_type"]} if match else {}


# ------------------------------------------------------------------------------------------ Light My Cells

LMC_MODALITIES = ("BF", "PC", "DIC")
#: the organelles, in the output channel order of the LMC network.
LMC_ORGANELLES = ("Nucleus", "Mitochondria", "Tubulin", "Actin")
_LMC_STUDY = re.compile(r"^Study_(?P<study>\d+)$")
_LMC_INPUT = re.compile(r"^image_(?P<image>\d+)_(?P<modality>BF|PC|DIC)_z(?P<z>\d+)\.ome\.tiff?$")
_LMC_TARGET = re.compile(r"^image_(?P<image>\d+)_(?P<organelle>Nucleus|Mitochondria|Tubulin|Actin)\.ome\.tiff?$")


def lmc_datalist(
    root: PathLike, exclude_studies: Iterable[int] = (), best_z: PathLike | Mapping[str, int] | None = None
) -> list[dict]:
    """Items of the Light My Cells training data: one per image of a study.

    Layout: ``root/Study_<n>/image_<i>_<BF|PC|DIC>_z<k>.ome.tiff`` (transmitted-light z-slices) and
    ``root/Study_<n>/image_<i>_<Nucleus|Mitochondria|Tubulin|Actin>.ome.tiff`` (targets); ``root`` may also be
    a folder holding exactly one such folder of studies (e.g. ``Orig_data/``). Inside a study folder, every
    TIFF file must follow one of the two patterns (anything else is an error, so that no image is silently
    left out); other files and sub-folders are ignored. Every file listed is checked from its TIFF header
    (readable, not cut short, one 2D plane, the size of the other files of its image), so that a damaged
    slice stops the run at once rather than when drawn, or never (see :func:`read_tiff_shape`).

    Args:
        root: the folder holding the ``Study_<n>`` folders.
        exclude_studies: study numbers to leave out (the LMC README leaves out study 11).
        best_z: the best focal plane of each image, which the challenge's evaluator measures z-distances
            from: None takes the middle slice's k (the training data do not record it); a CSV file in the
            evaluator's format (columns ``name`` and ``best_z``, one row per slice file name) or a mapping of
            slice file name to best z (:func:`read_lmc_best_z`) gives it per image.

    Returns:
        per image, sorted by (study, i)::

            {"inputs": [str, ...] z-slices sorted by k, "z": [k, ...], "best_z": k, "modality": "BF" | "PC" |
             "DIC", "targets": {organelle: str}, "organelles": sorted names present, "study": n,
             "id": "Study_<n>/image_<i>", <organelle>: str for each present organelle}

        The flat ``<organelle>`` keys exist only for the organelles present, so that
        ``LoadImaged(keys=LMC_ORGANELLES, allow_missing_keys=True)`` loads every target an image has. Items
        carry lists and dicts of varying length: a transform must pick one slice and one target (or drop
        these keys) before DataLoader batches them.

    Raises:
        LayoutError: missing folder, no study, a file not following the patterns, a target without z-slices,
            mixed modalities or a repeated z within an image, a listed file missing, empty, unreadable, cut
            short, not one 2D plane or of another size than its image's other files (every such file named in
            one message), no image at all; an image without a best z in ``best_z`` or with slices giving
            different ones.
    """
    studies = _lmc_studies(_existing_folder(Path(root), "Light My Cells dataset folder"))
    excluded = {int(study) for study in exclude_studies}
    items: list[dict] = []
    problems: list[str] = []
    for study, folder in studies:
        if study not in excluded:
            items += _lmc_study_items(study, folder, problems)
    _check_lmc_files(items, problems)
    if problems:
        raise LayoutError(
            f"{root}: files not in the Light My Cells layout or not readable ({len(problems)}):\n  "
            + "\n  ".join(problems)
        )
    if not items:
        raise LayoutError(f"{root}: no image found in the studies kept ({_listing([f.name for _, f in studies])}).")
    table = read_lmc_best_z(best_z) if isinstance(best_z, (str, os.PathLike)) else best_z
    for item in items:
        item["best_z"] = item["z"][(len(item["z"]) - 1) // 2] if table is None else _table_best_z(item, table, problems)
    if problems:
        raise LayoutError(f"{best_z}: best focal planes of the images kept:\n  " + "\n  ".join(problems))
    return items


def read_lmc_best_z(path: PathLike) -> dict[str, int]:
    """Slice file name -> best z, from a CSV in the format of the challenge's evaluator table
    (``name,modality,image_z,best_z``; only ``name`` and ``best_z`` are read).

    Raises:
        LayoutError: missing file or column, a best z that is not an integer (file and line named).
    """
    if not Path(path).is_file():
        raise LayoutError(f"{path}: best focal plane table not found.")
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    if rows and not {"name", "best_z"} <= set(rows[0]):
        raise LayoutError(f"{path}: expected columns name and best_z, found {sorted(rows[0])}.")
    table = {}
    for line, row in enumerate(rows, start=2):
        try:
            table[Path(row["name"]).name] = int(row["best_z"])
        except (TypeError, ValueError):
            raise LayoutError(f"{path}, line {line}: best_z {row['best_z']!r} is not an integer.") from None
    return table


def _table_best_z(item: Mapping, table: Mapping[str, int], problems: list[str]) -> int | None:
    """The one best z the table gives the slices of an LMC item; a problem appended when none or several."""
    found = {table[Path(path).name] for path in item["inputs"] if Path(path).name in table}
    if len(found) != 1:
        problems.append(
            f"{item['id']}: " + (f"slices give several best z {sorted(found)}" if found else "no slice listed")
        )
        return None
    return found.pop()


def _lmc_studies(root: Path) -> list[tuple[int, Path]]:
    """(n, folder) of each ``Study_<n>`` folder in ``root`` (or in its one sub-folder holding them), sorted by n."""
    studies = _study_folders(root)
    if studies:
        return studies
    candidates = [child for child in sorted(root.iterdir()) if child.is_dir() and _study_folders(child)]
    if len(candidates) == 1:
        return _study_folders(candidates[0])
    raise LayoutError(f"{root}: no Study_<n> folders found (expected Study_<n>/image_<i>_<BF|PC|DIC>_z<k>.ome.tiff).")


def _study_folders(folder: Path) -> list[tuple[int, Path]]:
    found = ((_LMC_STUDY.match(child.name), child) for child in folder.iterdir() if child.is_dir())
    return sorted((int(match["study"]), child) for match, child in found if match)


def _lmc_study_items(study: int, folder: Path, problems: list[str]) -> list[dict]:
    """Items of one study folder; problems found are appended to ``problems``."""
    inputs: dict[int, dict[int, tuple[str, Path]]] = defaultdict(dict)  # image -> z -> (modality, path)
    targets: dict[int, dict[str, Path]] = defaultdict(dict)  # image -> organelle -> path
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and _is_tiff(path)):
            continue
        if match := _LMC_INPUT.match(path.name):
            z_slices = inputs[int(match["image"])]
            if int(match["z"]) in z_slices:
                problems.append(f"{path}: z{int(match['z'])} of this image is also {z_slices[int(match['z'])][1].name}")
            z_slices[int(match["z"])] = (match["modality"], path)
        elif match := _LMC_TARGET.match(path.name):
            targets[int(match["image"])][match["organelle"]] = path
        else:
            problems.append(f"{path}: expected image_<i>_<BF|PC|DIC>_z<k>.ome.tiff or image_<i>_<Organelle>.ome.tiff")
    for image in sorted(set(targets) - set(inputs)):
        problems.append(f"{folder}/image_{image}: targets {sorted(targets[image])} without transmitted-light z-slices")
    items = []
    for image in sorted(inputs):
        modalities = sorted({modality for modality, _ in inputs[image].values()})
        if len(modalities) > 1:
            problems.append(f"{folder}/image_{image}: z-slices of mixed modalities {modalities}")
        else:
            items.append(_lmc_item(study, image, modalities[0], inputs[image], targets.get(image, {})))
    return items


def _check_lmc_files(items: Sequence[dict], problems: list[str]) -> None:
    """Check every slice and target file of LMC ``items`` from its TIFF header (:func:`read_tiff_shape`, a few
    hundred microseconds a file, read by several threads): readable, one 2D plane, the same (H, W) as the other
    files of its image. Each problem found is appended to ``problems``.

    A run reads one slice and one target of an image at a time, so a damaged file would otherwise surface
    only when drawn, or never (a slice no configuration reads); here it stops the run before it starts."""
    paths = [path for item in items for path in [*item["inputs"], *item["targets"].values()]]
    with ThreadPoolExecutor(max_workers=_CHECK_THREADS) as pool:
        shapes = dict(zip(paths, pool.map(_tiff_shape_or_error, paths)))
    for item in items:
        files = [*item["inputs"], *item["targets"].values()]
        problems += [shapes[path] for path in files if isinstance(shapes[path], str)]
        planes = {path: shapes[path] for path in files if isinstance(shapes[path], tuple)}
        problems += [
            f"{path}: shape {shape}, expected one 2D plane (H, W)" for path, shape in planes.items() if len(shape) != 2
        ]
        sizes = {path: shape[:2] for path, shape in planes.items()}
        if len(set(sizes.values())) > 1:
            first, size = next(iter(sizes.items()))
            others = ", ".join(f"{path} {other}" for path, other in sizes.items() if other != size)
            problems.append(f"{item['id']}: slices and targets differ in size: {first} {size}, {others}")


def _tiff_shape_or_error(path: str) -> tuple[int, ...] | str:
    """:func:`read_tiff_shape` of ``path``, or its error message (which names the file)."""
    try:
        return read_tiff_shape(path)
    except ImageFileError as error:
        return str(error)


def _lmc_item(
    study: int, image: int, modality: str, z_slices: dict[int, tuple[str, Path]], targets: dict[str, Path]
) -> dict:
    """The item of one LMC image."""
    z_values = sorted(z_slices)
    present = {name: str(path) for name, path in sorted(targets.items())}
    return {
        "inputs": [str(z_slices[z][1]) for z in z_values],
        "z": z_values,
        "modality": modality,
        "targets": present,
        "organelles": sorted(present),
        "study": study,
        "id": f"Study_{study}/image_{image}",
        **present,
    }


def lmc_split(
    items: Sequence[dict], val_fraction: float = 0.1, seed: int = 42, targets: Iterable[str] | None = None
) -> tuple[list[dict], list[dict]]:
    """(train, validation) split of LMC items per image, stratified by the set of organelles present.

    Each set of organelles is split on its own, so both parts keep every set that has enough images for
    ``round(val_fraction * count)`` to reach 1. The same ``items`` and ``seed`` always give the same split.

    Args:
        items: LMC image items (:func:`lmc_datalist`).
        val_fraction: share of each set of organelles held out for validation.
        seed: seed of the split.
        targets: keep, in both parts, only the images with at least one of these organelles (a fine-tuning
            run's targets); None keeps all. The split is drawn before, so that it is the same for every
            ``targets``: a fine-tuning run never trains on an image the base run validated on.
    """
    train, validation = split_datalist(items, (1.0 - val_fraction, val_fraction), seed=seed, stratify="organelles")
    if targets is None:
        return train, validation
    wanted = set(targets)
    return (
        [item for item in train if wanted & set(item["organelles"])],
        [item for item in validation if wanted & set(item["organelles"])],
    )


def lmc_slices(items: Sequence[dict], slices: str = "all") -> list[dict]:
    """One item per transmitted-light z-slice of LMC ``items`` (as :func:`lmc_datalist` gives), for evaluation.

    Args:
        items: LMC image items.
        slices: ``"all"`` keeps every slice (the challenge's test inputs are single slices of any focus);
            ``"middle"`` keeps the middle one of each image (a cheap, fixed choice for validation).

    Returns:
        ``{"image": str, "z": k, "modality", "study", "id", <organelle>: str ...}`` per slice: the keys of the
        image item without its lists, so the items batch as they are; items with a ``best_z`` also give
        ``"z_offset": |k - best_z|``, the distance the challenge's evaluator groups scores by.
    """
    if slices not in ("all", "middle"):
        raise ValueError(f"slices: expected 'all' or 'middle', got {slices!r}.")
    kept = []
    for item in items:
        flat = {key: value for key, value in item.items() if key not in ("inputs", "z", "targets", "organelles")}
        chosen = range(len(item["inputs"])) if slices == "all" else [(len(item["inputs"]) - 1) // 2]
        for index in chosen:
            z = item["z"][index]
            offset = {"z_offset": abs(z - item["best_z"])} if item.get("best_z") is not None else {}
            kept.append({"image": item["inputs"][index], "z": z, **flat, **offset})
    return kept


def lmc_channels(organelles: Iterable[str]) -> list[int]:
    """Output channel of each of ``organelles`` in the LMC network's output (:data:`LMC_ORGANELLES` order).

    Raises:
        ValueError: a name that is not an LMC organelle.
    """
    names = list(organelles)
    unknown = [name for name in names if name not in LMC_ORGANELLES]
    if unknown:
        raise ValueError(f"organelles: {unknown} are not LMC organelles {list(LMC_ORGANELLES)}.")
    return [LMC_ORGANELLES.index(name) for name in names]


def lmc_output_folders(organelles: Iterable[str]) -> list[str]:
    """The Light My Cells challenge's output folder of each of ``organelles``:
    ``"Nucleus"`` -> ``"nucleus-fluorescence-ome-tiff"``.

    Raises:
        ValueError: a name that is not an LMC organelle.
    """
    names = list(organelles)
    lmc_channels(names)
    return [f"{name.lower()}-fluorescence-ome-tiff" for name in names]


# ------------------------------------------------------------------------------------------------ Adipocyte

#: target channel -> what it stains.
ADIPOCYTE_TARGETS = {"C01": "nuclei", "C02": "lipids", "C03": "cytoplasm"}
ADIPOCYTE_Z_PLANES = 7
_BRIGHTFIELD_CHANNEL = 4
_MAGNIFICATION_FOLDER = re.compile(r"^(?P<magnification>\d+)x_images$")
#: ``AssayPlate_Greiner_#655090_<Well>_T0001F<fov>L01A0<a>Z0<z>C0<c>.tif``; prefix = name up to ``L01``.
_ADIPOCYTE_FILE = re.compile(
    r"^(?P<prefix>.+_(?P<well>[A-Z]\d+)_T\d+F(?P<field>\d+)L\d+)A(?P<action>\d+)Z(?P<z>\d+)C(?P<channel>\d+)\.tiff?$"
)


def adipocyte_datalist(
    root: PathLike, magnification: int | str | None = None, require_targets: bool = True
) -> list[dict]:
    """Items of the Adipocyte Cell Imaging Challenge: one per (magnification, well, field of view).

    Layout: ``root/<20x|40x|60x>_images/AssayPlate_Greiner_#655090_<Well>_T0001F<fov>L01A0<a>Z0<z>C0<c>.tif``
    with brightfield planes ``A04Z01C04`` to ``A04Z07C04`` and targets ``A01Z01C01`` (nuclei), ``A02Z01C02``
    (lipids), ``A03Z01C03`` (cytoplasm). ``root`` may also be one ``<m>x_images`` folder, or, when
    ``magnification`` is given, a flat folder of such files (an inference folder). TIFF files not following
    the pattern are an error.

    Args:
        root: the dataset folder.
        magnification: 20, 40, 60 (or "40x") keeps that folder only; None keeps every ``<m>x_images`` folder.
        require_targets: every sample must have its three targets; False for inference folders holding only
            brightfield (targets present are still listed).

    Returns:
        per sample, sorted by (magnification, id)::

            {"brightfield": [7 str, Z01..Z07], "C01": str, "C02": str, "C03": str, "magnification": int,
             "well": str, "field": str, "id": prefix}

        where ``prefix`` is the file name up to ``L01`` (the start of the challenge's output names); ids are
        unique within a magnification. Target keys are absent when a target is (``require_targets=False``).

    Raises:
        LayoutError: missing folder, no sample, a file not following the pattern, or incomplete samples (all of
            them listed in one message, each with what it lacks).
    """
    root_folder = _existing_folder(Path(root), "adipocyte dataset folder")
    folders = _adipocyte_folders(root_folder, _magnification(magnification))
    items: list[dict] = []
    problems: list[str] = []
    for level, folder in folders:
        items += _adipocyte_folder_items(level, folder, require_targets, problems)
    if problems:
        heading = f"{root}: incomplete or unexpected adipocyte samples ({len(problems)}):"
        raise LayoutError("\n  ".join([heading, *problems]))
    if not items:
        raise LayoutError(f"{root}: no adipocyte image found in {_listing([str(f) for _, f in folders])}.")
    return items


def _magnification(value: int | str | None) -> int | None:
    """20, "20" or "20x" -> 20."""
    if value is None:
        return None
    text = str(value).lower().removesuffix("x")
    if not text.isdigit():
        raise ValueError(f"magnification: expected 20, 40, 60 or '40x', got {value!r}.")
    return int(text)


def _adipocyte_folders(root: Path, magnification: int | None) -> list[tuple[int, Path]]:
    """(magnification, folder) of the image folders to read, sorted by magnification."""
    own = _MAGNIFICATION_FOLDER.match(root.name)
    if own:
        if magnification not in (None, int(own["magnification"])):
            raise LayoutError(f"{root}: holds {own['magnification']}x images, not {magnification}x.")
        return [(int(own["magnification"]), root)]
    found = ((_MAGNIFICATION_FOLDER.match(child.name), child) for child in root.iterdir() if child.is_dir())
    folders = sorted((int(match["magnification"]), child) for match, child in found if match)
    if magnification is not None:
        chosen = [(level, folder) for level, folder in folders if level == magnification]
        if chosen:
            return chosen
        if not folders and any(_ADIPOCYTE_FILE.match(path.name) for path in root.iterdir()):
            return [(magnification, root)]
        raise LayoutError(f"{root / f'{magnification}x_images'}: adipocyte image folder not found.")
    if not folders:
        raise LayoutError(f"{root}: no <20x|40x|60x>_images folder found.")
    return folders


def _adipocyte_folder_items(level: int, folder: Path, require_targets: bool, problems: list[str]) -> list[dict]:
    """Items of one magnification folder; problems found are appended to ``problems``."""
    planes: dict[str, dict[tuple[int, int], Path]] = defaultdict(dict)  # prefix -> (channel, z) -> path
    fields: dict[str, tuple[str, str]] = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and _is_tiff(path)):
            continue
        match = _ADIPOCYTE_FILE.match(path.name)
        if match is None:
            problems.append(f"{path}: expected <plate>_<Well>_T0001F<fov>L01A0<a>Z0<z>C0<c>.tif")
            continue
        key = (int(match["channel"]), int(match["z"]))
        if key in planes[match["prefix"]]:
            problems.append(f"{path}: same channel and plane as {planes[match['prefix']][key].name}")
        planes[match["prefix"]][key] = path
        fields[match["prefix"]] = (match["well"], match["field"])
    items = []
    for prefix in sorted(planes):
        lacking = _adipocyte_lacking(planes[prefix], require_targets)
        if lacking:
            problems.append(f"{folder.name}/{prefix}: {lacking}")
        else:
            items.append(_adipocyte_item(level, prefix, fields[prefix], planes[prefix]))
    return items


def _adipocyte_lacking(planes: dict[tuple[int, int], Path], require_targets: bool) -> str:
    """What one sample lacks or has in excess, as text ("" when complete)."""
    expected_bf = {(_BRIGHTFIELD_CHANNEL, z) for z in range(1, ADIPOCYTE_Z_PLANES + 1)}
    targets = {(int(name[1:]), 1) for name in ADIPOCYTE_TARGETS}
    issues = []
    missing_bf = sorted(expected_bf - set(planes))
    if missing_bf:
        issues.append("brightfield planes " + ", ".join(f"Z{z:02d}" for _, z in missing_bf) + " missing")
    missing_targets = sorted(targets - set(planes))
    if require_targets and missing_targets:
        issues.append("targets " + ", ".join(f"C{c:02d}" for c, _ in missing_targets) + " missing")
    unexpected = sorted(set(planes) - expected_bf - targets)
    if unexpected:
        issues.append("unexpected planes " + ", ".join(planes[key].name for key in unexpected))
    return "; ".join(issues)


def _adipocyte_item(level: int, prefix: str, well_field: tuple[str, str], planes: dict[tuple[int, int], Path]) -> dict:
    """The item of one complete adipocyte sample."""
    item: dict[str, object] = {
        "brightfield": [str(planes[(_BRIGHTFIELD_CHANNEL, z)]) for z in range(1, ADIPOCYTE_Z_PLANES + 1)]
    }
    for name in ADIPOCYTE_TARGETS:
        if (int(name[1:]), 1) in planes:
            item[name] = str(planes[(int(name[1:]), 1)])
    item.update(magnification=level, well=well_field[0], field=well_field[1], id=prefix)
    return item


def adipocyte_split(items: Sequence[dict], seed: int = 42) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, test) split of adipocyte samples, as Bug Hunters made it: 10 % test, then 20 % of
    the rest validation, each magnification split on its own (so one folder's split does not depend on which
    other folders are present). Deterministic for a ``seed``; order within a part follows ``items``."""
    parts: tuple[list[dict], list[dict], list[dict]] = ([], [], [])
    for level in sorted({item["magnification"] for item in items}):
        group = [item for item in items if item["magnification"] == level]
        rest, test = split_datalist(group, (0.9, 0.1), seed=seed)
        train, validation = split_datalist(rest, (0.8, 0.2), seed=seed)
        for part, chosen in zip(parts, (train, validation, test)):
            part += chosen
    return parts


def adipocyte_split_part(items: Sequence[dict], split: str, seed: int = 42) -> list[dict]:
    """The ``split`` part (``"training"``, ``"validation"`` or ``"test"``) of :func:`adipocyte_split`."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}.")
    return adipocyte_split(items, seed)[SPLITS.index(split)]


def adipocyte_model_name(best_ssim: bool = False) -> str:
    """File name of an adipocyte model, a template of ``magnification`` and ``channel``: ``model_20x_c01.pt`` holds
    the weights of the last training epoch, ``model_20x_c01_best_ssim.pt`` those of the best validation SSIM."""
    return "model_{magnification}x_c{channel:02d}" + ("_best_ssim" if best_ssim else "") + ".pt"


def adipocyte_channel_names(channels: Sequence[int]) -> list[str]:
    """Names of the adipocyte target channel numbers ``channels``: ``[1, 3]`` -> ``["C01 nuclei", "C03 cytoplasm"]``
    (a number without a known target: ``"C07"``)."""
    return [f"C{int(c):02d} {ADIPOCYTE_TARGETS.get(f'C{int(c):02d}', '')}".strip() for c in channels]


def adipocyte_pairs(
    samples: Sequence[dict], channels: Sequence[int] | Mapping[int, Sequence[int]], targets: bool = True
) -> list[dict]:
    """Network items of adipocyte samples: the brightfield stack as ``image``, the chosen targets as ``label``.

    Args:
        samples: items of :func:`adipocyte_datalist`.
        channels: target channel numbers (1 nuclei, 2 lipids, 3 cytoplasm) for every magnification, or
            magnification -> channel numbers (e.g. ``MagnificationModels.channels``: what trained models predict).
        targets: add ``label``; False for inference folders without targets.

    Returns:
        per sample whose magnification has channels, in the order of ``samples``::

            {"image": [7 brightfield paths], "label": [target path per channel], "channels": [c, ...],
             "magnification": int, "well": str, "field": str, "id": prefix}

        ``LoadImaged(keys=["image", "label"], reader=MicroscopyReader(), ensure_channel_first=True)`` then gives
        a (7, H, W) stack and (len(channels), H, W) targets. Samples of other magnifications are left out with a
        warning naming the magnifications and counts.

    Raises:
        ValueError: a channel number other than 1, 2 or 3.
        LayoutError: with ``targets``, samples lacking a chosen target (all listed).
    """
    by_magnification = channels if isinstance(channels, Mapping) else None
    valid = {int(name[1:]) for name in ADIPOCYTE_TARGETS}
    chosen = list(by_magnification.values()) if by_magnification is not None else [channels]
    unknown = sorted({int(c) for group in chosen for c in group} - valid)
    if unknown:
        raise ValueError(f"channels: expected numbers among {sorted(valid)}, got {unknown}.")
    items, lacking = [], []
    skipped: dict[int, int] = defaultdict(int)
    for sample in samples:
        wanted = by_magnification.get(sample["magnification"], []) if by_magnification is not None else channels
        wanted = sorted(int(c) for c in wanted)
        if not wanted:
            skipped[sample["magnification"]] += 1
            continue
        names = [f"C{c:02d}" for c in wanted]
        item = {"image": list(sample["brightfield"]), "channels": wanted}
        if targets:
            absent = [name for name in names if name not in sample]
            if absent:
                lacking.append(f"{sample['magnification']}x/{sample['id']}: {', '.join(absent)}")
                continue
            item["label"] = [sample[name] for name in names]
        item.update({key: sample[key] for key in ("magnification", "well", "field", "id")})
        items.append(item)
    if lacking:
        raise LayoutError(f"targets missing for {len(lacking)} sample(s): {_listing(lacking)}.")
    if skipped:
        counts = ", ".join(f"{count} at {level}x" for level, count in sorted(skipped.items()))
        warnings.warn(f"no channel to predict for {counts}: those samples are left out.", stacklevel=2)
    return items
