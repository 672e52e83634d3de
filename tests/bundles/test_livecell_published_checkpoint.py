"""The LIVECell project's published SwinUNETR checkpoint (``models/swinunetr-ADAM1e4_best.pth``, a bare
``model.state_dict()`` of MONAI's ``SwinUNETR(spatial_dims=2, in_channels=1, out_channels=1, img_size=96)``
trained with MONAI 1.1.0) loads into the bundle's default network.

MONAI removed ``img_size`` (1.3) and added options since, but kept the parameter names: the names and shapes
of MONAI 1.1.0's network (built from the 1.1.0 source, 159 entries with the relative-position-index buffers)
hash to :data:`MONAI_1_1_SWIN_UNETR`. So the notebook's network is built here with today's MONAI and its
arguments (``img_size`` left out), and its state dict saved as the notebook saves it.
"""

import hashlib

import numpy as np
import pytest
import torch
import tifffile
from conftest import REPO
from monai.bundle import ConfigParser
from monai.inferers import sliding_window_inference
from test_bundle_suite import run_cli

from common.networks import load_pretrained

pytest.importorskip("einops", reason="MONAI's SwinUNETR needs einops")
from monai.networks.nets import SwinUNETR  # noqa: E402

BUNDLE = REPO / "bundles" / "livecell_semantic_segmentation"
#: sha256 of "<name> <shape>" lines of MONAI 1.1.0's SwinUNETR(img_size=96, spatial_dims=2, in 1, out 1).
MONAI_1_1_SWIN_UNETR = "dcca7bd00c069e7b09e00095f6964a5199e76660ff903ef6517c2d6c5615c594"
PUBLISHED_NAME = "swinunetr-ADAM1e4_best.pth"


def signature(state_dict) -> str:
    return hashlib.sha256("\n".join(f"{k} {tuple(v.shape)}" for k, v in state_dict.items()).encode()).hexdigest()


def bundle_network() -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    return parser.get_parsed_content("network_def")


def notebook_checkpoint(path) -> torch.nn.Module:
    """The notebook's network (random weights, seeded), saved as it saves it: ``torch.save(state_dict)``."""
    torch.manual_seed(1)
    model = SwinUNETR(spatial_dims=2, in_channels=1, out_channels=1)
    for name, parameter in model.named_parameters():  # not MONAI's initial values, so that loading shows
        if "norm" in name:
            parameter.data.add_(0.1 * torch.randn_like(parameter))
    torch.save(model.state_dict(), path)
    return model.eval()


def test_bundle_network_has_monai_1_1_parameter_names_and_shapes():
    assert signature(bundle_network().state_dict()) == MONAI_1_1_SWIN_UNETR
    assert signature(SwinUNETR(spatial_dims=2, in_channels=1, out_channels=1).state_dict()) == MONAI_1_1_SWIN_UNETR


def test_published_state_dict_loads_and_gives_the_same_output(tmp_path):
    original = notebook_checkpoint(tmp_path / PUBLISHED_NAME)
    ours = bundle_network().eval()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    load_pretrained(ours, tmp_path / PUBLISHED_NAME)  # refuses any missing, unexpected or reshaped key
    assert any(not torch.equal(before[k], v) for k, v in ours.state_dict().items())
    x = torch.rand(2, 1, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), original(x), rtol=0, atol=0)
    # the bundle's own checkpoints (CheckpointSaver's {"model": ...}) load through the same call
    torch.save({"model": original.state_dict()}, tmp_path / "model.pt")
    with torch.no_grad():
        torch.testing.assert_close(load_pretrained(bundle_network().eval(), tmp_path / "model.pt")(x), original(x))


def test_inference_cli_runs_on_the_published_checkpoint(tmp_path):
    original = notebook_checkpoint(tmp_path / PUBLISHED_NAME)
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for index in range(2):
        tifffile.imwrite(images / f"A172_Phase_A7_1_00d00h00m_{index}.tif", rng.integers(0, 256, (48, 64), np.uint8))
    run_cli(BUNDLE, "inferring", ["inference.json"],
            {"ckpt_path": str(tmp_path / PUBLISHED_NAME), "dataset_dir": str(images),
             "output_dir": str(tmp_path / "masks"), "bundle_root": str(BUNDLE)})  # fmt: skip
    for path in sorted(images.glob("*.tif")):
        image = torch.from_numpy(tifffile.imread(path)).float()
        image = (image - image.min()) / (image.max() - image.min())
        with torch.no_grad():
            logits = sliding_window_inference(image[None, None], (96, 96), 4, original, overlap=0.25)
        expected = np.where(torch.sigmoid(logits)[0, 0].numpy() >= 0.5, 255, 0)
        written = tifffile.imread(tmp_path / "masks" / f"{path.stem}_mask.tif")
        np.testing.assert_array_equal(np.squeeze(written), expected)
