"""The MEDIAR bundle's inference pieces as its configs build them: flip TTA with sign-corrected flows, the
two-model ensemble, and tiled post-processing of large images."""

import pytest
import torch
from monai.bundle import ConfigParser

from common.metrics import match_instances
from common.networks import AverageEnsemble
from common.transforms import LabelsToFlows
from tests.support.bundles import REPO
from tests.support.shapes import random_cells

BUNDLE = REPO / "bundles" / "mediar_cell_segmentation"
SMALL = {"encoder": "mit_b0", "decoder_channels": [32, 32, 16, 16, 16], "attention_channels": 8, "patch_size": [64, 64]}


def inference_parser(**overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update({**SMALL, **overrides})
    return parser


class GradientNetwork(torch.nn.Module):
    """(B, 3, H, W) -> (B, 3, H, W) ``[d/dy, d/dx, value]`` of the first channel: flows that turn with the image."""

    def forward(self, x):
        padded = torch.nn.functional.pad(x[:, :1], (1, 1, 1, 1), mode="replicate")
        dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
        dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
        return torch.cat([dy, dx, x[:, :1]], dim=1)


def test_flipped_predictions_have_their_flows_sign_corrected():
    parser = inference_parser()
    tta, window = parser.get_parsed_content("inferer"), parser.get_parsed_content("sliding_window")
    image = torch.rand(1, 1, 64, 64).expand(1, 3, 64, 64)  # grey, one window: the windowing is flip-symmetric
    network = GradientNetwork()
    with torch.no_grad():
        plain = window(image, network)
        torch.testing.assert_close(tta(image, network), plain)
        for dims, negated in (((2,), 0), ((3,), 1), ((2, 3), (0, 1))):  # each flip, undone by hand
            flipped = window(image.flip(dims), network).flip(dims)
            assert not torch.allclose(flipped, plain)  # the flow components of a flipped image point the other way
            flipped[:, negated] = -flipped[:, negated]
            torch.testing.assert_close(flipped, plain)
    assert inference_parser(tta=False).get_parsed_content("inferer").__class__.__name__ == "SlidingWindowInferer"


def test_two_checkpoints_make_an_average_ensemble(tmp_path):
    torch.manual_seed(0)
    template = inference_parser().get_parsed_content("network_def")
    paths = []
    for index in range(2):
        member = inference_parser().get_parsed_content("network_def")
        paths.append(str(tmp_path / f"model_{index}.pt"))
        torch.save({"model": member.state_dict()} if index else member.state_dict(), paths[-1])
    network = inference_parser(ckpt_paths=paths, device="$torch.device('cpu')").get_parsed_content("network").eval()
    assert isinstance(network, AverageEnsemble)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = []
        for path in paths:
            state = torch.load(path, weights_only=True)
            template.load_state_dict(state.get("model", state))
            expected.append(template.eval()(x))
        torch.testing.assert_close(network(x), (expected[0] + expected[1]) / 2)


@pytest.mark.parametrize("tile_size", [48, 64])
def test_large_images_are_labelled_in_tiles_with_unique_ids(tile_size):
    labels = torch.from_numpy(random_cells((150, 130), 60, seed=4)).to(torch.int32)[None]
    pred = LabelsToFlows(log_heat=True, neighbour_heat=True, centre="median")(labels)
    pred[2] = pred[2] * 8 - 4  # cell probability as logits
    step = "postprocessing#transforms#0"  # FlowsToLabelsd as inference.json configures it
    tiled = inference_parser(**{f"{step}#tile_size": tile_size, f"{step}#tile_overlap": 32}).get_parsed_content(step)
    whole = inference_parser(**{f"{step}#tile_size": 1000}).get_parsed_content(step)
    result, reference = tiled({"pred": pred})["pred"], whole({"pred": pred})["pred"]
    assert torch.equal(result, reference)  # tiles merge into the untiled result: ids unique, cells whole
    assert match_instances(labels[0], result[0])["f1"] > 0.95


@pytest.mark.parametrize(
    "config_files, evaluator",
    [
        (["inference.json"], "evaluator"),
        (["train.json", "evaluate.json"], "validate#evaluator"),
    ],
)
def test_inference_and_evaluation_run_in_float32_unless_amp_is_switched_on(config_files, evaluator):
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / name) for name in config_files])
    assert parser[f"{evaluator}#amp"] == "@amp"
    assert parser.get_parsed_content("amp") is False  # MEDIAR's Predictor runs without autocast
