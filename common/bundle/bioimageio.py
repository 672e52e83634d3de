"""bioimage.io model packages (format 0.5) of a bundle's network, for deepImageJ / Fiji, QuPath, ilastik and
napari's bioimage.io plugin: ``python -m common.bundle export BUNDLE --format bioimageio --out DIR``.

The package holds the bundle's ``network_def`` (inference.json) with one checkpoint as TorchScript, the
pre-/post-processing steps of inference.json that the spec has operations for, a test input made from
``common.data.synthetic`` and the output of our own inference on it, a cover image, authors, citations, licence and a
documentation page listing what the bundle does that the package does not. ``bioimageio.spec`` is needed at export
time only (the ``bioimageio`` extra).

Each spec operation is an :class:`Op`: the package names it, and :meth:`Op.apply` is our own implementation of it,
with which the test output is computed, so that ``bioimageio test`` (bioimage.io's implementation) checks both.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.bundle.export import read_metadata

__all__ = ["EXTRA", "SYNTHETIC_INPUTS", "Op", "PackagePlan", "export_bioimageio", "package_name", "plan_package"]

EXTRA = "bioimageio"
# bundle name -> (common.data.synthetic layout, folder of the synthetic dataset that inference reads)
SYNTHETIC_INPUTS = {
    "adipocyte_fluorescence_prediction": ("adipocyte", ""),
    "dsb_nuclei_watershed_segmentation": ("bbbc039", "images"),
    "livecell_semantic_segmentation": ("livecell", "images/livecell_test_images"),
    "lmc_fluorescence_prediction": ("lmc", "Study_1"),
    "mediar_cell_segmentation": ("neurips", "images"),
}
AXES = ("channel", "y", "x")  # of one sample; the package's tensors are (batch, channel, y, x)
# transforms that form the package's input from a file (the tool's job: it opens the image), applied first
INPUT_TRANSFORMS = {"LoadImaged", "CopyItemsToMetad", "EnsureTyped", "MaxIntensityProjectiond", "AsChannelsd"}
# what a post-processing step the spec has no operation for does, for the documentation page
WATERSHED = "marker-controlled watershed into instance labels (foreground, markers, watershed, small-instance removal)"
NOT_INCLUDED = {
    "FlowsToLabelsd": "flow following: turning the predicted flows and cell probability into instance labels",
    **dict.fromkeys(
        ("ForegroundMaskd", "SubtractBoundaryd", "LabelMarkersd", "FillHolesd", "WatershedLandscaped"), WATERSHED
    ),
    **dict.fromkeys(("MarkerWatershedd", "RemoveSmallInstancesd"), WATERSHED),
    "AsDiscreted": "thresholding the probability into a mask",
    "Invertd": "cropping the padded prediction back to the image size",
}
WRITERS = ("Save", "Lambdad", "DeleteItemsd")  # file writing and type conversion steps: not network processing


def _require_spec():
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError as error:
        raise ModuleNotFoundError(
            f"export --format bioimageio needs bioimageio.spec: pip install 'monai-microscopy-bundles[{EXTRA}]' "
            f"(setup.cfg extra '{EXTRA}')."
        ) from error


@dataclass
class Op:
    """One pre-/post-processing operation of the bioimage.io spec (``id`` and its ``kwargs``) with our own
    implementation: :meth:`apply` maps a (C, H, W) float32 tensor as the spec defines the operation (``axes`` name
    the reduced axes of one sample: ``channel``, ``y``, ``x``)."""

    id: str
    kwargs: dict = field(default_factory=dict)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kwargs
        if self.id == "scale_linear":
            return x * k["gain"] + k["offset"]
        if self.id == "clip":
            return x.clamp(k["min"], k["max"])
        if self.id == "sigmoid":
            return torch.sigmoid(x)
        dims = tuple(AXES.index(a) for a in k["axes"])
        if self.id == "zero_mean_unit_variance":
            mean = x.mean(dim=dims, keepdim=True)
            std = x.std(dim=dims, keepdim=True, correction=0)
            return (x - mean) / (std + k["eps"])
        if self.id == "scale_range":
            kept = [d for d in range(x.ndim) if d not in dims]
            flat = x.permute(*kept, *dims).reshape(*[x.shape[d] for d in kept], -1).double()
            low, high = (np.percentile(flat.numpy(), q, axis=-1) for q in (k["min_percentile"], k["max_percentile"]))
            shape = [x.shape[d] if d in kept else 1 for d in range(x.ndim)]
            low_t, high_t = (torch.as_tensor(v, dtype=torch.float64).reshape(shape) for v in (low, high))
            return ((x.double() - low_t) / (high_t - low_t + k["eps"])).float()
        raise ValueError(f"operation {self.id!r}: not implemented here.")

    def descr(self):
        """The spec's description of the operation (``bioimageio.spec.model.v0_5``)."""
        from bioimageio.spec.model import v0_5 as spec

        k = dict(self.kwargs)
        if "axes" in k:
            k["axes"] = [spec.AxisId(a) for a in k["axes"]]
        classes = {
            "scale_linear": (spec.ScaleLinearDescr, spec.ScaleLinearKwargs),
            "clip": (spec.ClipDescr, spec.ClipKwargs),
            "zero_mean_unit_variance": (spec.ZeroMeanUnitVarianceDescr, spec.ZeroMeanUnitVarianceKwargs),
            "scale_range": (spec.ScaleRangeDescr, spec.ScaleRangeKwargs),
        }
        if self.id == "sigmoid":
            return spec.SigmoidDescr()
        descr, kwargs = classes[self.id]
        return descr(kwargs=kwargs(**k))


def _inner(transform):
    """The array transform of a MONAI / common dictionary transform."""
    for name in ("transform", "scaler", "padder", "converter"):
        if hasattr(transform, name):
            return getattr(transform, name)
    return transform


def _transform_ops(transform, name: str) -> tuple[list[Op] | None, str | None]:
    """The spec operations equal to one preprocessing transform of the bundle (None: none exists) and what the
    package does differently (None: nothing)."""
    inner = _inner(transform)
    if name == "ScaleIntensityRanged":
        gain = (inner.b_max - inner.b_min) / (inner.a_max - inner.a_min)
        offset = inner.b_min - inner.a_min * gain
        ops = [] if (gain, offset) == (1.0, 0.0) else [Op("scale_linear", {"gain": gain, "offset": offset})]
        return ops + ([Op("clip", {"min": inner.b_min, "max": inner.b_max})] if inner.clip else []), None
    if name == "ScaleIntensityd" and (inner.minv, inner.maxv, inner.factor) == (0.0, 1.0, None):
        axes = ["y", "x"] if inner.channel_wise else list(AXES)
        return [Op("scale_range", {"axes": axes, "min_percentile": 0.0, "max_percentile": 100.0, "eps": 1e-6})], None
    if name == "Whitend":
        note = "whitening divides by the standard deviation without Bessel's correction plus 1e-6 (bundle: with it)"
        return [Op("zero_mean_unit_variance", {"axes": ["y", "x"], "eps": 1e-6})], note
    if name == "ScalePercentilesd":
        scale = {"axes": ["y", "x"], "min_percentile": inner.lower, "max_percentile": inner.upper, "eps": 1e-6}
        return [Op("scale_range", scale)] + ([Op("clip", {"min": 0.0, "max": 1.0})] if inner.clip else []), None
    if name == "NonZeroPercentileNormalized":
        axes = ["y", "x"] if inner.channel_wise else list(AXES)
        scale = {"axes": axes, "min_percentile": inner.lower, "max_percentile": inner.upper, "eps": 1e-6}
        note = "percentiles are taken over all pixels (bundle: the non-zero pixels; the same for images without zeros)"
        if inner.levels is not None:
            note += f"; no flooring to {inner.levels} grey levels (at most 1/{inner.levels - 1} per pixel)"
        return [Op("scale_range", scale), Op("clip", {"min": 0.0, "max": 1.0})], note
    if name == "Quantised":
        return [], f"no rounding to {2**inner.bits} levels (at most 1/{2 ** (inner.bits + 1)} per pixel)"
    if name == "DivisiblePadd":
        return [], f"no padding: the package takes heights and widths that are multiples of {inner.k}"
    return None, None


def _normalisations_first(ops: list[Op], bundle: Path) -> list[Op]:
    """``ops`` without the positive linear scalings before a normalisation (``scale_range``,
    ``zero_mean_unit_variance``), which changes nothing but ``eps``: bioimage.io computes a normalisation's
    statistics on the tensor as it enters preprocessing, not after the steps before it."""
    out: list[Op] = []
    for op in ops:
        if op.id in ("scale_range", "zero_mean_unit_variance"):
            if any(before.id != "scale_linear" or before.kwargs["gain"] <= 0 for before in out):
                raise ValueError(
                    f"{bundle}/configs/inference.json: {[o.id for o in out]} before {op.id}: bioimage.io normalises "
                    "the unprocessed input."
                )
            out = []
        out.append(op)
    return out


def _post_ops(transform, name: str) -> list[Op] | None:
    if name == "Activationsd" and all(transform.sigmoid) and not any(transform.softmax) and not any(transform.other):
        return [Op("sigmoid")]
    inner = _inner(transform)
    if name == "ScaleIntensityRanged":
        return _transform_ops(transform, name)[0]
    if name == "ReorderChannelsd" and list(inner.order) == list(range(len(inner.order))):
        return []
    return None


def _identifier(text: str, taken: set[str]) -> str:
    name = re.sub(r"\W+", "_", text.lower()).strip("_")[:24].strip("_") or "channel"
    name = f"c_{name}" if name[0].isdigit() else name
    unique, index = name, 1
    while unique in taken:
        unique, index = f"{name}{index}", index + 1
    taken.add(unique)
    return unique


def channel_names(tensor_format: dict) -> list[str]:
    """Channel identifiers of a ``network_data_format`` entry, from its ``channel_def`` (made unique)."""
    definition = tensor_format.get("channel_def", {})
    taken: set[str] = set()
    return [_identifier(definition.get(str(c), f"channel{c}"), taken) for c in range(tensor_format["num_channels"])]


@dataclass
class PackagePlan:
    """What :func:`export_bioimageio` writes, before any bioimage.io class is built.

    ``raw_input``: (1, C, H, W) test input (the tool's image, before preprocessing); ``bundle_input``: the same
    after the bundle's own preprocessing transforms; ``test_output``: (1, C', H, W) our inference after the
    package's pre- and post-processing; ``size``: ``(min, step)`` of the spatial axes, or ``(size, 0)`` for a fixed
    size (a traced network).
    """

    bundle: Path
    metadata: dict
    checkpoint: Path
    network: nn.Module
    scripted: torch.jit.ScriptModule
    traced: bool
    size: tuple[int, int]
    preprocessing: list[Op]
    postprocessing: list[Op]
    differences: list[str]
    not_included: list[str]
    raw_input: np.ndarray
    bundle_input: np.ndarray
    test_output: np.ndarray


def _checkpoint(parser, bundle: Path, model: str | None) -> Path:
    """The checkpoint to package: ``model`` (a path, or a file under the bundle), else the primary one of
    inference.json (``ckpt_path``, ``checkpoints#base``, the first of ``ckpt_paths``, the first adipocyte model)."""
    if model:
        path = Path(model) if Path(model).is_file() else bundle / model
        if not path.is_file():
            raise FileNotFoundError(f"--model {model}: no such checkpoint (also not under {bundle}).")
        return path
    config = parser.get
    if "ckpt_path" in parser:
        candidates = [parser.get_parsed_content("ckpt_path")]
    elif "checkpoints" in parser and "base" in config("checkpoints"):
        candidates = [parser.get_parsed_content("checkpoints#base")]
    elif "ckpt_paths" in parser:
        candidates = list(parser.get_parsed_content("ckpt_paths"))[:1]
    elif "model_name" in parser:
        name = parser.get_parsed_content("model_name")
        folder = Path(parser.get_parsed_content("ckpt_dir"))
        candidates = [
            folder / name.format(magnification=m, channel=c)
            for m in parser.get_parsed_content("magnifications")
            for c in parser.get_parsed_content("channels")
        ]
    else:
        candidates = [bundle / "models" / "model.pt"]
    for path in map(Path, candidates):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{bundle}: no checkpoint to package (looked for {', '.join(map(str, candidates))}).")


def _to_torchscript(network: nn.Module, in_channels: int, fixed: Sequence[int]) -> tuple[torch.jit.ScriptModule, bool]:
    try:
        return torch.jit.script(network), False
    except Exception:  # noqa: BLE001 - any scripting failure: trace at the network's fixed patch size
        example = torch.zeros(1, in_channels, *fixed)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants: one size
            return torch.jit.trace(network, example, check_trace=False), True


def _size_step(network: nn.Module, in_channels: int) -> tuple[int, int]:
    """``(min, step)``: the least power of two ``step`` (8 to 64) for which heights and widths of 2 and 3 steps
    give an output of the input's size."""
    for step in (8, 16, 32, 64):
        try:
            with torch.no_grad():
                out = network(torch.zeros(1, in_channels, 2 * step, 3 * step))
        except Exception:  # noqa: BLE001 - a size the network refuses
            continue
        if tuple(out.shape[-2:]) == (2 * step, 3 * step):
            return 2 * step, step
    raise ValueError("network_def: no input size (multiples of 8 to 64) gives an output of the input's size.")


def _synthetic_item(parser, bundle: Path, work: Path, overrides: dict) -> dict:
    """The first item of inference.json's ``datalist`` for a synthetic dataset of the bundle's layout."""
    from common.data.synthetic import write_dataset

    if bundle.name not in SYNTHETIC_INPUTS:
        raise ValueError(f"{bundle}: no synthetic layout known for this bundle (add it to SYNTHETIC_INPUTS).")
    layout, folder = SYNTHETIC_INPUTS[bundle.name]
    dataset = write_dataset(layout, work / layout, n=3, size=128, seed=0)
    parser.update({**overrides, "dataset_dir": str(dataset / folder), "output_dir": str(work / "predictions")})
    datalist = parser.get_parsed_content("datalist")
    if not datalist:
        raise ValueError(f"{bundle}: inference.json's datalist is empty for the synthetic {layout} dataset.")
    return dict(datalist[0])


def _crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Top-left crop of a (C, H, W) image to the largest valid size (at most 128), or the fixed size."""
    least, step = size
    out = []
    for extent in image.shape[-2:]:
        if step == 0:
            length = least
        else:
            length = least + (min(extent, 128) - least) // step * step
        if extent < length or length < least:
            raise ValueError(f"test input: image of size {tuple(image.shape[-2:])} smaller than {least}.")
        out.append(length)
    return image[:, : out[0], : out[1]]


def plan_package(bundle: str | Path, model: str | None = None, overrides: dict | None = None) -> PackagePlan:
    """Everything the package holds, computed with the bundle's own configs and code (see :class:`PackagePlan`).

    Args:
        bundle: bundle folder.
        model: checkpoint to package (default: the primary one, see :func:`_checkpoint`).
        overrides: config ids of inference.json to override (e.g. a smaller ``backbone`` for tests).
    """
    from monai.bundle import ConfigParser

    from common.networks import load_pretrained

    bundle = Path(bundle).resolve()
    metadata = read_metadata(bundle)
    overrides = dict(overrides or {})
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update({**overrides, "bundle_root": str(bundle)})
    checkpoint = _checkpoint(parser, bundle, model)
    torch.manual_seed(0)
    network = load_pretrained(parser.get_parsed_content("network_def"), checkpoint).eval()
    formats = metadata["network_data_format"]
    in_channels = formats["inputs"]["image"]["num_channels"]
    scripted, traced = _to_torchscript(network, in_channels, formats["inputs"]["image"]["spatial_shape"])
    size = (int(formats["inputs"]["image"]["spatial_shape"][0]), 0) if traced else _size_step(network, in_channels)

    with tempfile.TemporaryDirectory() as work:
        item = _synthetic_item(parser, bundle, Path(work), overrides)
        transforms = list(parser.get_parsed_content("preprocessing").transforms)
        names = [type(t).__name__ for t in transforms]
        for transform, name in zip(transforms, names):
            if name in INPUT_TRANSFORMS:
                item = transform(item)
    raw = _crop(torch.as_tensor(np.asarray(item["image"]), dtype=torch.float32), size)

    preprocessing, differences = [], []
    bundle_input = raw.clone()
    for transform, name in zip(transforms, names):
        if name in INPUT_TRANSFORMS:
            continue
        ops, note = _transform_ops(transform, name)
        if ops is None:
            raise ValueError(f"{bundle}/configs/inference.json: preprocessing {name} has no bioimage.io operation.")
        preprocessing += ops
        differences += [note] if note else []
        bundle_input = torch.as_tensor(np.asarray(transform({"image": bundle_input})["image"]), dtype=torch.float32)

    preprocessing = _normalisations_first(preprocessing, bundle)
    postprocessing: list[Op] = []
    not_included: list[str] = []
    for transform in parser.get_parsed_content("postprocessing").transforms:
        name = type(transform).__name__
        ops = None if not_included else _post_ops(transform, name)
        if ops is None:
            if name.startswith(WRITERS):
                continue
            not_included.append(NOT_INCLUDED.get(name, f"post-processing step {name}"))
            continue
        postprocessing += ops
    not_included = list(dict.fromkeys(not_included))  # the watershed's steps once

    x = raw
    for op in preprocessing:
        x = op.apply(x)
    with torch.no_grad():
        y = network(x[None])[0]
    for op in postprocessing:
        y = op.apply(y)
    return PackagePlan(
        bundle=bundle,
        metadata=metadata,
        checkpoint=checkpoint,
        network=network,
        scripted=scripted,
        traced=traced,
        size=size,
        preprocessing=preprocessing,
        postprocessing=postprocessing,
        differences=differences,
        not_included=not_included + _inference_not_included(parser),
        raw_input=raw[None].numpy(),
        bundle_input=bundle_input[None].numpy(),
        test_output=y[None].numpy().astype(np.float32),
    )


def _inference_not_included(parser) -> list[str]:
    """What inference.json's inferer and network do beyond one network on one image."""
    notes = []
    text = json.dumps(parser.get("inferer")) + json.dumps(parser.get("network")) + json.dumps(parser.get("tta", ""))
    if "SlidingWindowInferer" in text or "sliding_window" in text:
        notes.append("tiling of large images (the bundle's sliding window; tools tile images themselves)")
    if "DihedralTTAInferer" in text or "tta" in text:
        notes.append("test-time augmentation (flips / rotations averaged)")
    if "ensemble_from_checkpoints" in text:
        notes.append("the ensemble of several checkpoints (`ckpt_paths`; the package holds one network)")
    if "ChannelSourcesInferer" in text:
        notes.append("the fine-tuned models of other channels (ChannelSourcesInferer picks each channel's model)")
    if "MagnificationModels" in text:
        notes.append("the models of other magnifications and channels (one package per model: --model)")
    return notes


def package_name(bundle: Path) -> str:
    """``<name>_v<version>.bioimageio.zip``."""
    return f"{bundle.name}_v{read_metadata(bundle)['version']}.bioimageio.zip"


REFERENCE_LINK = re.compile(
    r"(?:doi:\s*|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,}/\S+?)[.,;)]?(?:\s|$)|(https?://\S+?)[.,;)]?(?:\s|$)|arXiv:(\d{4}\.\d{4,5})"
)


def citations(references: Sequence[str]) -> tuple[list[dict], list[str]]:
    """``{"text", "doi" or "url"}`` of each reference that names a DOI, URL or arXiv number, and the others."""
    cited, rest = [], []
    for reference in references:
        match = REFERENCE_LINK.search(reference)
        if match is None:
            rest.append(reference)
            continue
        doi, url, arxiv = match.groups()
        text = reference[: match.start()].rstrip(" ,.") or reference
        link = {"doi": doi} if doi else {"url": url or f"https://arxiv.org/abs/{arxiv}"}
        cited.append({"text": text, **link})
    return cited, rest


def cover_image(raw_input: np.ndarray, test_output: np.ndarray, path: Path) -> Path:
    """PNG, 2:1: the test input's first channel beside the output's first channel, each scaled to its 1st-99th
    percentiles."""
    from PIL import Image

    panels = []
    for array in (raw_input[0, 0], test_output[0, 0]):
        low, high = np.percentile(array, (1, 99))
        scaled = np.clip((array - low) / (high - low if high > low else 1.0), 0, 1)
        panels.append((scaled * 255).astype(np.uint8))
    Image.fromarray(np.concatenate(panels, axis=1)).save(path)
    return path


def _checkpoint_name(plan: PackagePlan) -> str:
    """The packaged checkpoint as the documentation names it: its path in the bundle, or its own for one elsewhere
    (``--model /runs/x/model.pt``)."""
    checkpoint, bundle = plan.checkpoint.resolve(), plan.bundle.resolve()
    return checkpoint.relative_to(bundle).as_posix() if checkpoint.is_relative_to(bundle) else str(checkpoint)


def documentation(plan: PackagePlan, cited: list[dict], uncited: list[str]) -> str:
    """The package's documentation page (markdown)."""
    meta = plan.metadata
    inputs, outputs = meta["network_data_format"]["inputs"]["image"], meta["network_data_format"]["outputs"]["pred"]
    least, step = plan.size
    sizes = f"exactly {least} x {least}" if step == 0 else f"{least} + n x {step} (any n >= 0), up to memory"
    lines = [
        f"# {meta['name']} (bioimage.io package of a MONAI bundle)",
        "",
        meta["description"],
        "",
        "## What the package does",
        f"- Runs the bundle's network (`network_def` of `configs/inference.json`) with the weights of "
        f"`{_checkpoint_name(plan)}` as TorchScript" + (" (traced: one input size)." if plan.traced else "."),
        f"- Input `image`: (batch, channel, y, x) float32, {inputs['num_channels']} channel(s): "
        + "; ".join(inputs.get("channel_def", {}).values())
        + f". Heights and widths: {sizes}.",
        "- Preprocessing: " + (", ".join(f"`{op.id}` {op.kwargs}" for op in plan.preprocessing) or "none") + ".",
        f"- Output `pred`: {outputs['num_channels']} channel(s): " + "; ".join(outputs.get("channel_def", {}).values()),
        "- Post-processing: " + (", ".join(f"`{op.id}`" for op in plan.postprocessing) or "none") + ".",
        f"- Other checkpoints of the bundle are packaged with `python -m common.bundle export {plan.bundle.name} "
        "--format bioimageio --model models/<file>`.",
        "",
        "## What the package does NOT include",
        "The bundle (`python -m monai.bundle run inferring ...`) does these; the package gives the network's output:",
        *[f"- {item}" for item in plan.not_included],
        *[f"- preprocessing difference: {item}" for item in plan.differences],
        "",
        "## Source",
        f"Bundle `{plan.bundle.name}` version {meta['version']}; {meta['authors']}. Intended use: "
        f"{meta['intended_use']}. Data: {meta['data_source']}.",
        "",
        "## References",
        *[f"- {c['text']} ({c.get('doi') or c.get('url')})" for c in cited],
        *[f"- {text}" for text in uncited],
        "",
    ]
    return "\n".join(lines)


def _tensor_axes(spec, size: tuple[int, int], names: list[str], output: bool):
    least, step = size
    if output:
        spatial = [
            spec.SpaceOutputAxis(
                id=spec.AxisId(a), size=spec.SizeReference(tensor_id=spec.TensorId("image"), axis_id=spec.AxisId(a))
            )
            for a in ("y", "x")
        ]
    else:
        extent = least if step == 0 else spec.ParameterizedSize(min=least, step=step)
        spatial = [spec.SpaceInputAxis(id=spec.AxisId(a), size=extent) for a in ("y", "x")]
    channels = spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in names])
    return [spec.BatchAxis(), channels, *spatial]


def _tensor_descr(spec, plan: PackagePlan, work: Path, output: bool):
    """The package's input ``image`` (``output`` False) or output ``pred`` with its test tensor file in ``work``."""
    side, key, cls = (
        ("outputs", "pred", spec.OutputTensorDescr) if output else ("inputs", "image", spec.InputTensorDescr)
    )
    names = channel_names(plan.metadata["network_data_format"][side][key])
    steps = {"postprocessing": plan.postprocessing} if output else {"preprocessing": plan.preprocessing}
    return cls(
        id=spec.TensorId(key),
        axes=_tensor_axes(spec, plan.size, names, output),
        test_tensor=spec.FileDescr(source=work / f"test_{'output' if output else 'input'}.npy"),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        **{name: [op.descr() for op in ops] for name, ops in steps.items()},
    )


def export_bioimageio(
    bundle: str | Path,
    out_dir: str | Path,
    model: str | None = None,
    overrides: dict | None = None,
    overwrite: bool = False,
    plan: PackagePlan | None = None,
) -> Path:
    """Write ``<out_dir>/<name>_v<version>.bioimageio.zip``, a bioimage.io model package (format 0.5), of ``plan``
    (default: :func:`plan_package` of ``bundle``, ``model`` and ``overrides``).

    Raises:
        ModuleNotFoundError: bioimageio.spec is missing (names the extra).
        FileExistsError: the package exists and ``overwrite`` is False.
        ValueError: a preprocessing step has no spec operation, or no reference has a DOI or URL.
    """
    _require_spec()
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as spec

    bundle = Path(bundle).resolve()
    target = Path(out_dir) / package_name(bundle)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; remove it or pass overwrite=True (--overwrite).")
    plan = plan or plan_package(bundle, model, overrides)
    meta = plan.metadata
    cited, uncited = citations(meta.get("references", []))
    if not cited:
        raise ValueError(f"{bundle / 'configs' / 'metadata.json'}: references: none names a DOI, URL or arXiv number.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        np.save(work / "test_input.npy", plan.raw_input)
        np.save(work / "test_output.npy", plan.test_output)
        plan.scripted.save(str(work / "weights.pt"))
        cover = cover_image(plan.raw_input, plan.test_output, work / "cover.png")
        (work / "README.md").write_text(documentation(plan, cited, uncited))
        shutil.copy2(bundle / "LICENSE", work / "LICENSE")
        descr = spec.ModelDescr(
            name=meta["name"],
            description=meta["task"],
            version=meta["version"],
            authors=[spec.Author(name=meta["authors"].split(";")[0].strip())],
            cite=[spec.CiteEntry(**c) for c in cited],
            license=spec.LicenseId("Apache-2.0"),
            documentation=spec.FileDescr(source=work / "README.md"),
            covers=[spec.FileDescr(source=cover)],
            attachments=[spec.FileDescr(source=work / "LICENSE")],
            tags=["microscopy", "monai-bundle", bundle.name],
            inputs=[_tensor_descr(spec, plan, work, output=False)],
            outputs=[_tensor_descr(spec, plan, work, output=True)],
            weights=spec.WeightsDescr(
                torchscript=spec.TorchscriptWeightsDescr(
                    source=work / "weights.pt", pytorch_version=spec.Version(torch.__version__.split("+")[0])
                )
            ),
        )
        partial = target.with_name(target.name[: -len(".zip")] + ".partial.zip")
        save_bioimageio_package(descr, output_path=partial)
        partial.replace(target)
    return target
