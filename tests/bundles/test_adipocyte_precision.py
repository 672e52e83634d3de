"""The adipocyte bundle infers raw 16-bit intensities in float32: a saturated field (uint16 65535 pixels) gives a
finite prediction under the bundle's own inference settings, where float16 autocast (AMP) would overflow."""

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from common.data.synthetic import write_dataset
from common.io import read_image, write_image
from tests.support.bundles import REPO, load_spec, save_untrained_weights

BUNDLE = REPO / "bundles" / "adipocyte_fluorescence_prediction"
FLOAT16_MAX = float(torch.finfo(torch.float16).max)  # 65504


@pytest.fixture(scope="module")
def inference(tmp_path_factory):
    """The parsed inference.json (suite's narrow network, untrained 20x C01 weights) on one saturated 20x field."""
    work = tmp_path_factory.mktemp("adipocyte_precision")
    folder = write_dataset("adipocyte", work / "data", n=3, size=64, seed=0) / "20x_images"  # one field per folder
    plane = next(folder.glob("*A04Z04C04.tif"))
    pixels = read_image(plane)
    pixels[16:48, 20:44] = np.iinfo(np.uint16).max  # a saturated region, as a 16-bit camera records it
    write_image(plane, pixels, overwrite=True)
    overrides = load_spec(BUNDLE)["inference_overrides"]
    save_untrained_weights(BUNDLE, work, overrides, "models/model_20x_c01.pt")
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update({**overrides, "dataset_dir": str(folder), "bundle_root": str(work), "output_dir": str(work / "out")})
    return parser


def test_saturated_input_gives_a_finite_prediction_in_the_bundle_settings(inference):
    assert inference.get_parsed_content("amp") is False
    evaluator = inference.get_parsed_content("evaluator")
    evaluator.run()
    (output,) = evaluator.state.output
    assert output["pred"].dtype == torch.float32 and output["pred"].shape == (1, 64, 76)
    assert torch.isfinite(output["pred"]).all()
    assert read_image(output["pred_paths"][0]).dtype == np.uint16


def test_float16_autocast_would_overflow_on_the_same_field(inference):
    """What AMP on CUDA did: 65535 is beyond float16's range, and so are activations of the untrained network."""
    image = inference.get_parsed_content("dataset")[0]["image"][None]  # (1, 1, H, W) float32 projection
    assert image.max() == 65535 and torch.isinf(image.half()).any()
    network, inferer = inference.get_parsed_content("network").eval(), inference.get_parsed_content("inferer")
    peaks = {}  # float32 run: largest activation of every layer over all tiles

    def record(name):
        def hook(module, inputs, output):
            peaks[name] = max(peaks.get(name, 0.0), float(output.abs().max()))

        return hook

    hooks = [
        module.register_forward_hook(record(name))
        for name, module in network.named_modules()
        if isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d))
    ]
    with torch.no_grad():
        inferer(image, network, magnification=20)  # tiles the network accepts
        for hook in hooks:
            hook.remove()
        with torch.autocast("cpu", dtype=torch.float16):
            half = inferer(image, network, magnification=20)
    beyond = [name for name, peak in peaks.items() if peak > FLOAT16_MAX]
    print("layers beyond float16:", len(beyond), "of", len(peaks), beyond[:3], "largest", max(peaks.values()))
    assert beyond and not torch.isfinite(half).all()
