"""The LIVECell project's published SwinUNETR checkpoint (``models/swinunetr-ADAM1e4_best.pth``, a bare
``model.state_dict()`` of MONAI's ``SwinUNETR(spatial_dims=2, in_channels=1, out_channels=1, img_size=96)``
trained with MONAI 1.1.0) loads into the bundle's default network.

MONAI removed ``img_size`` (1.3) and added options since, but kept the parameter names: the names and shapes
of MONAI 1.1.0's network (built from the 1.1.0 source, 159 entries with the relative-position-index buffers)
hash to :data:`MONAI_1_1_SWIN_UNETR`. So the notebook's network is built here with today's MONAI and its
arguments (``img_size`` left out), and its state dict saved as the notebook saves it.

The notebook's network saw images transposed, (x, y), as MONAI 1.1's ITK reader returned them; with
``published_orientation`` the bundle's inference and evaluation do the same and turn the prediction back.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.inferers import sliding_window_inference

from common.data.synthetic import write_dataset
from common.networks import load_pretrained
from tests.support.bundles import REPO, run_cli

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


def published_prediction(network, image: torch.Tensor, published_orientation: bool) -> np.ndarray:
    """The notebook's thresholded prediction for a (H, W) image scaled to [0, 1], in the image's (y, x) orientation:
    the network run on the image as read (``published_orientation`` False) or transposed, as ITK read it, and the
    result transposed back."""
    seen = image.T if published_orientation else image
    with torch.no_grad():
        logits = sliding_window_inference(seen[None, None], (96, 96), 4, network, overlap=0.25)[0, 0]
    mask = torch.sigmoid(logits) >= 0.5
    return (mask.T if published_orientation else mask).numpy()


def scaled(path) -> torch.Tensor:
    image = torch.from_numpy(tifffile.imread(path)).float()
    return (image - image.min()) / (image.max() - image.min())


@pytest.mark.parametrize("published_orientation", [False, True])
def test_inference_cli_runs_on_the_published_checkpoint(tmp_path, published_orientation):
    original = notebook_checkpoint(tmp_path / PUBLISHED_NAME)
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for index in range(2):  # not square, so that a missing or doubled transpose changes the mask's shape
        tifffile.imwrite(images / f"A172_Phase_A7_1_00d00h00m_{index}.tif", rng.integers(0, 256, (48, 64), np.uint8))
    run_cli(BUNDLE, "inferring", ["inference.json"],
            {"ckpt_path": str(tmp_path / PUBLISHED_NAME), "dataset_dir": str(images),
             "output_dir": str(tmp_path / "masks"), "bundle_root": str(BUNDLE),
             "published_orientation": published_orientation})  # fmt: skip
    differs = []
    for path in sorted(images.glob("*.tif")):
        expected = published_prediction(original, scaled(path), published_orientation)
        written = tifffile.imread(tmp_path / "masks" / f"{path.stem}_mask.tif")
        np.testing.assert_array_equal(np.squeeze(written), np.where(expected, 255, 0))
        differs.append(
            not np.array_equal(expected, published_prediction(original, scaled(path), not published_orientation))
        )
    assert any(differs), "the network gives the same masks in both orientations: the test cannot tell them apart"


def test_evaluation_in_published_orientation_scores_the_prediction_turned_back(tmp_path):
    """evaluate.json with ``published_orientation``: the network sees (x, y), the scored prediction and mask are
    (y, x)."""
    original = notebook_checkpoint(tmp_path / PUBLISHED_NAME)
    dataset = write_dataset("livecell", tmp_path / "livecell", n=10, size=48, seed=0)  # 48 x 65 images
    overrides = {"dataset_dir": str(dataset), "bundle_root": str(tmp_path), "ckpt_path": str(tmp_path / PUBLISHED_NAME),
                 "num_workers": 0, "device": "$torch.device('cpu')", "amp": False, "eval_split": "test"}  # fmt: skip
    parsers = {}
    for switch in (False, True):
        parsers[switch] = ConfigParser()
        parsers[switch].read_config([str(BUNDLE / "configs" / name) for name in ("train.json", "evaluate.json")])
        parsers[switch].update(
            {**overrides, "published_orientation": switch, "output_dir": str(tmp_path / str(switch))}
        )
    evaluator = parsers[True].get_parsed_content("validate#evaluator")
    outputs = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: outputs.extend(engine.state.output))
    evaluator.run()
    plain = parsers[False].get_parsed_content("validate#preprocessing")
    items = {Path(item["image"]).name: item for item in parsers[False].get_parsed_content("validate#datalist")}
    assert len(outputs) == len(items) > 0
    differs = []
    for output in outputs:
        source = Path(output["pred"].meta["filename_or_obj"])
        image = scaled(source)
        assert image.shape[0] != image.shape[1]
        expected = published_prediction(original, image, published_orientation=True)
        np.testing.assert_array_equal(output["pred"][0].numpy(), expected.astype(np.float32))
        np.testing.assert_array_equal(output["label"].numpy(), plain(items[source.name])["label"].numpy())
        differs.append(not np.array_equal(expected, published_prediction(original, image, published_orientation=False)))
    assert any(differs), "the network gives the same masks in both orientations: the test cannot tell them apart"
