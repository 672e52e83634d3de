"""Nucleus/boundary targets and their inversion by the marker watershed, composed of its steps as the DSB
bundle's ``postprocessing`` composes them."""

import inspect
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, DeleteItemsd, FillHolesd
from scipy import ndimage
from skimage.measure import label as skimage_label
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential
from skimage.segmentation import watershed as skimage_watershed

from common.metrics import match_instances
from common.postprocess import (
    LANDSCAPES,
    ForegroundMaskd,
    LabelMarkers,
    LabelMarkersd,
    MarkerWatershedd,
    RemoveSmallInstancesd,
    SubtractBoundaryd,
    WatershedLandscape,
    WatershedLandscaped,
)
from common.transforms import InstanceToBoundaryTargetsd, instance_to_boundary_targets
from tests.support.shapes import touching_ellipses

DEFAULT_LANDSCAPE = inspect.signature(WatershedLandscape).parameters["landscape"].default


@dataclass(frozen=True)
class Options:
    """The options of the marker watershed, written once for the steps and the reference."""

    threshold: float = 0.5
    boundary_threshold: float = 0.5
    fill_holes: bool = True
    min_marker_size: int = 1
    min_size: int = 1
    landscape: str = DEFAULT_LANDSCAPE
    marker_connectivity: int = 2


def watershed_steps(**options) -> Compose:
    """The steps in the order of the DSB bundle's ``postprocessing`` (after the sigmoid), on key ``pred``."""
    method = Options(**options)
    return Compose(
        [
            ForegroundMaskd("pred", output_keys="mask", threshold=method.threshold),
            SubtractBoundaryd("mask", probability_key="pred", output_keys="cores", threshold=method.boundary_threshold),
            LabelMarkersd(
                "cores", output_keys="markers", min_size=method.min_marker_size, connectivity=method.marker_connectivity
            ),
            *([FillHolesd("mask", connectivity=1)] if method.fill_holes else []),
            WatershedLandscaped(
                "markers", output_keys="landscape", landscape=method.landscape, cores_key="cores", mask_key="mask"
            ),
            MarkerWatershedd(
                "landscape",
                output_keys="pred",
                markers_key="markers",
                mask_key="mask",
                raster_ties=method.landscape == "distance_to_markers",
            ),
            RemoveSmallInstancesd("pred", min_size=method.min_size),
            DeleteItemsd(["mask", "cores", "markers", "landscape"]),
        ]
    )


def watershed_instances(nucleus, boundary, **options) -> torch.Tensor:
    """(H, W) int32 labels of the steps on two (H, W) probability maps."""
    probabilities = torch.stack([torch.as_tensor(nucleus), torch.as_tensor(boundary)])
    return watershed_steps(**options)({"pred": probabilities})["pred"][0]


def reference_instances(nucleus, boundary, **options):
    """The same method written directly with scikit-image and SciPy, without the steps."""
    method = Options(**options)
    foreground = nucleus > method.threshold
    cores = foreground & (boundary <= method.boundary_threshold)
    markers = skimage_label(cores, connectivity=method.marker_connectivity)
    markers = relabel_sequential(remove_small_objects(markers, max_size=method.min_marker_size - 1))[0]
    region = ndimage.binary_fill_holes(foreground) if method.fill_holes else foreground
    flood = {
        "binary": -cores.astype(np.float32),
        "distance_to_markers": ndimage.distance_transform_edt(markers == 0),
        "distance_to_background": -ndimage.distance_transform_edt(region),
    }[method.landscape]
    if method.landscape == "distance_to_markers":  # equal values flooded in raster order, as the bundle asks
        flood = np.argsort(np.lexsort((np.arange(flood.size), flood.ravel()))).reshape(flood.shape)
    labels = skimage_watershed(flood, markers, mask=region)
    return relabel_sequential(remove_small_objects(labels, max_size=method.min_size - 1))[0]


def test_boundary_lies_only_where_two_nuclei_touch():
    labels = np.zeros((10, 16), np.int32)
    labels[2:8, 1:6] = 4
    labels[2:8, 6:11] = 9  # touches nucleus 4 along the column 5 | 6
    labels[2:8, 13:16] = 2  # isolated
    targets = instance_to_boundary_targets(labels, boundary_width=1)
    assert targets.shape == (2, 10, 16) and targets.dtype == torch.float32
    assert torch.equal(targets[0], torch.as_tensor(labels > 0, dtype=torch.float32))
    boundary = targets[1].numpy().astype(bool)
    expected = np.zeros_like(boundary)
    expected[2:8, 5:7] = True  # one pixel on each side of the contact
    assert np.array_equal(boundary, expected)


def test_boundary_width_widens_the_band():
    labels = np.zeros((10, 20), np.int32)
    labels[:, :10], labels[:, 10:] = 1, 2
    widths = [int(instance_to_boundary_targets(labels, w)[1, 0].sum()) for w in (1, 2, 3)]
    assert widths == [2, 4, 6]


def test_targets_on_the_device_and_in_the_dictionary_transform():
    labels = torch.as_tensor(touching_ellipses((64, 64), n=10, seed=1))[None]
    out = InstanceToBoundaryTargetsd(keys="label", boundary_width=2)({"label": labels})["label"]
    assert out.shape == (2, 64, 64) and out.device == labels.device


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="instance label image"):
        instance_to_boundary_targets(np.zeros((2, 3, 4, 4), int))
    with pytest.raises(TypeError, match="fractional"):
        instance_to_boundary_targets(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="boundary_width"):
        instance_to_boundary_targets(np.zeros((4, 4), int), boundary_width=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("boundary_width", [1, 2, 3])
@pytest.mark.parametrize(
    "landscape, min_f1, min_iou",
    [
        ("distance_to_markers", 0.99, 0.985),
        ("binary", 0.99, 0.98),
        ("distance_to_background", 0.97, 0.93),
    ],
)
def test_targets_then_watershed_rebuild_touching_nuclei(seed, boundary_width, landscape, min_f1, min_iou):
    labels = touching_ellipses((256, 256), n=40, radius=(7, 14), seed=seed, min_size=100)
    targets = instance_to_boundary_targets(labels, boundary_width)
    assert targets[1].sum() > 0, "the scene must have touching nuclei"
    rebuilt = watershed_instances(targets[0], targets[1], min_marker_size=10, landscape=landscape)
    result = match_instances(labels, rebuilt.numpy())
    assert result["f1"] >= min_f1
    assert result["mean_iou"] >= min_iou


def test_default_landscape_rebuilds_best():
    labels = touching_ellipses((256, 256), n=40, radius=(7, 14), seed=0, min_size=100)
    targets = instance_to_boundary_targets(labels, 2)
    iou = {
        landscape: match_instances(
            labels, watershed_instances(targets[0], targets[1], min_marker_size=10, landscape=landscape).numpy()
        )["mean_iou"]
        for landscape in LANDSCAPES
    }
    default = DEFAULT_LANDSCAPE
    assert iou[default] == max(iou.values()) and iou[default] > iou["distance_to_background"], iou


@pytest.mark.parametrize("seed", range(2))
def test_steps_equal_the_method_written_with_scikit_image(seed):
    """Every option of the steps against :func:`reference_instances` on noisy touching ellipses (specks, holes,
    markers and instances below the size limits). Before the steps replaced the one-transform post-processing
    (``BoundaryWatershed``), they were checked equal to it on the same kind of scenes in all these options."""
    labels = touching_ellipses((96, 96), n=14, radius=(5, 12), seed=seed)
    targets = instance_to_boundary_targets(labels, 1 + seed).numpy()
    noisy = np.clip(targets + np.random.default_rng(seed).normal(0, 0.3, targets.shape), 0, 1).astype(np.float32)
    for landscape, connectivity, fill_holes, min_marker_size, min_size in itertools.product(
        LANDSCAPES, (1, 2), (True, False), (1, 10), (1, 10)
    ):
        options = {
            "landscape": landscape,
            "marker_connectivity": connectivity,
            "fill_holes": fill_holes,
            "min_marker_size": min_marker_size,
            "min_size": min_size,
        }
        expected = reference_instances(noisy[0], noisy[1], **options)
        assert np.array_equal(watershed_instances(noisy[0], noisy[1], **options).numpy(), expected), options


def test_steps_keep_the_prediction_type_and_meta_data():
    probabilities = MetaTensor(torch.zeros(2, 16, 16), meta={"filename_or_obj": "cells.png"})
    probabilities[0, 2:8, 2:8] = 0.9
    out = watershed_steps()({"pred": probabilities})
    assert set(out) == {"pred"}
    assert isinstance(out["pred"], MetaTensor) and out["pred"].meta["filename_or_obj"] == "cells.png"
    assert out["pred"].shape == (1, 16, 16) and out["pred"].dtype == torch.int32


def original_watershed(nucleus, boundary):
    """The original's post-processing (post_processing_denoise_2ch + post_processing_watershed_2ch), in skimage."""
    foreground = ndimage.binary_fill_holes(nucleus > 0.5)
    subtracted = foreground.astype(float) * (boundary <= 0.5)
    return skimage_watershed(-subtracted, skimage_label(subtracted, background=0), mask=foreground)


@pytest.mark.parametrize("seed", range(3))
def test_binary_landscape_with_8_connected_markers_is_the_original_post_processing(seed):
    labels = touching_ellipses((128, 128), n=20, radius=(5, 12), seed=seed)
    targets = instance_to_boundary_targets(labels, 1).numpy()
    rng = np.random.default_rng(seed)
    nucleus = np.clip(targets[0] + rng.normal(0, 0.3, labels.shape), 0, 1)  # noisy, with small specks and holes
    boundary = np.clip(targets[1] + rng.normal(0, 0.3, labels.shape), 0, 1)
    nucleus = ndimage.binary_fill_holes(nucleus > 0.5).astype(float)  # markers from the filled mask, as there
    ours = watershed_instances(nucleus, boundary, landscape="binary", marker_connectivity=2)
    assert np.array_equal(ours, original_watershed(nucleus, boundary))
    four = watershed_instances(nucleus, boundary, landscape="binary", marker_connectivity=1)
    assert four.max() > ours.max()  # diagonal contacts join 8-connected markers


def test_watershed_output_types_and_errors():
    probabilities = torch.zeros(2, 32, 32)
    probabilities[0, 4:12, 4:12] = 0.9
    probabilities[0, 16:30, 16:30] = 0.9
    probabilities[0, 20:22, 20:22] = 0.1  # a hole: filled
    labels = watershed_steps()({"pred": probabilities})["pred"]
    assert labels.shape == (1, 32, 32) and labels.dtype == torch.int32
    assert sorted(torch.unique(labels).tolist()) == [0, 1, 2]
    assert labels[0, 21, 21] == labels[0, 17, 17]
    assert watershed_instances(np.zeros((8, 8)), np.zeros((8, 8))).max() == 0  # empty image: no objects
    with pytest.raises(ValueError, match="key 'pred'.*NaN"):
        ForegroundMaskd("pred", output_keys="mask")({"pred": torch.full((2, 8, 8), torch.nan)})
    with pytest.raises(ValueError, match="key 'mask'.*channel 1"):
        SubtractBoundaryd("mask")({"mask": torch.ones(1, 8, 8, dtype=torch.bool), "pred": torch.zeros(1, 8, 8)})
    with pytest.raises(ValueError, match="landscape"):
        WatershedLandscape("gradient")
    with pytest.raises(ValueError, match="connectivity"):
        LabelMarkers(connectivity=4)


def test_raster_ties_flood_equal_values_in_raster_order_wherever_the_image_starts():
    """Two markers equidistant from a column of pixels: the queue's order gives them to either, depending on what
    else the image holds; with raster ties the same pixels go to the same marker in a crop as in the whole."""
    from common.postprocess.watershed import MarkerWatershed, raster_rank

    landscape = np.array([[2.0, 1.0, 1.0, 3.0], [1.0, 2.0, 1.0, 1.0]])
    rank = raster_rank(landscape)
    np.testing.assert_array_equal(rank, [[5, 0, 1, 7], [2, 6, 3, 4]])  # by value, then row, then column
    markers = np.zeros((1, 9, 21), np.int32)
    markers[0, 4, 2], markers[0, 4, 18] = 1, 2
    mask = np.ones((1, 9, 21), bool)
    whole = ndimage.distance_transform_edt(markers[0] == 0)[None]
    labels = MarkerWatershed(raster_ties=True)(whole, markers, mask)[0]
    crop = (slice(None), slice(1, 8), slice(1, 20))
    crop_landscape = ndimage.distance_transform_edt(markers[crop][0] == 0)[None]
    crop_labels = MarkerWatershed(raster_ties=True)(crop_landscape, markers[crop], mask[crop])[0]
    np.testing.assert_array_equal(np.asarray(crop_labels), np.asarray(labels)[1:8, 1:20])
    assert set(np.unique(np.asarray(labels)[:, 10])) <= {1, 2}  # the equidistant column
