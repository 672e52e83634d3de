"""The DSB bundle segments 8-bit PNG fields as the published model's Space serves them (BBBC039 examples)."""

import numpy as np
from monai.bundle import ConfigParser
from PIL import Image

from common.io import read_image
from tests.support.bundles import REPO, run_cli, save_untrained_weights

BUNDLE = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"


def nuclei_field(shape=(130, 174), seed=0) -> np.ndarray:
    """(H, W) uint8 field of bright blurred disks on a dark background, like the Space's 8-bit examples."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 7.0)
    for _ in range(12):
        cy, cx, radius = rng.uniform(10, shape[0] - 10), rng.uniform(10, shape[1] - 10), rng.uniform(5, 10)
        image += 200.0 / (1.0 + np.exp(np.hypot(yy - cy, xx - cx) - radius))
    return np.clip(image + rng.normal(0, 3, shape), 0, 255).astype(np.uint8)


def test_grey_and_rgb_8_bit_pngs_give_the_same_labels(tmp_path):
    field = nuclei_field()
    inputs = tmp_path / "examples"
    inputs.mkdir()
    Image.fromarray(field, mode="L").save(inputs / "grey.png")  # as app/examples/*.png
    Image.fromarray(field, mode="L").convert("RGB").save(inputs / "rgb.png")  # as the Space hands an upload over
    root = save_untrained_weights(BUNDLE, tmp_path / "run").parents[1]
    out = tmp_path / "labels"
    run_cli(
        BUNDLE,
        "inferring",
        ["inference.json"],
        {"dataset_dir": str(inputs), "bundle_root": str(root), "output_dir": str(out), "patch_size": [64, 64]},
    )
    grey, rgb = read_image(out / "grey_label.tiff"), read_image(out / "rgb_label.tiff")
    assert grey.shape == rgb.shape == field.shape
    assert np.issubdtype(grey.dtype, np.integer)
    assert np.array_equal(grey, rgb)

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    preprocessing = parser.get_parsed_content("preprocessing")
    grey_in, rgb_in = (preprocessing({"image": str(inputs / name)})["image"] for name in ("grey.png", "rgb.png"))
    assert grey_in.shape == (3,) + field.shape and np.array_equal(grey_in.numpy(), rgb_in.numpy())
    levels = np.unique(grey_in.numpy() * 255)
    assert levels.min() == 0 and levels.max() == 255 and np.allclose(levels, np.round(levels), atol=1e-4)  # 8-bit
