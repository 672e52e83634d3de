"""common.bundle.inference_config: a bundle's inference.json with overrides, as evaluation and verify read it."""

import json

import pytest
import torch

from common.bundle import inference_config
from common.bundle.configs import override_ids

INFERENCE = {
    "bundle_root": ".",
    "ckpt_dir": "$@bundle_root + '/models'",
    "checkpoints": {"base": "$@ckpt_dir + '/model.pt'", "actin": "$@ckpt_dir + '/model_actin.pt'"},
    "network_def": {"_target_": "torch.nn.Identity"},
    "network": "$[@network_def, @checkpoints]",
}


@pytest.fixture
def config_file(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "inference.json").write_text(json.dumps(INFERENCE))
    (tmp_path / "configs" / "metadata.json").write_text(json.dumps({"version": "1.2.3"}))
    return tmp_path / "configs" / "inference.json"


def test_nested_overrides_set_the_entries_they_name():
    assert override_ids({"device": "cpu", "checkpoints": {"actin": "a.pt", "x": {"y": 1}}, "empty": {}}) == {
        "device": "cpu",
        "checkpoints#actin": "a.pt",
        "checkpoints#x#y": 1,
    }


def test_overrides_reach_the_ids_that_use_them_and_built_objects_stay_themselves(config_file):
    network_def = torch.nn.Linear(2, 2)
    parser = inference_config(
        config_file, {"ckpt_dir": "/ckpt", "checkpoints": {"actin": "/elsewhere/actin.pth"}, "network_def": network_def}
    )
    network, checkpoints = parser.get_parsed_content("network")
    assert network is network_def and parser.get_parsed_content("network_def") is network_def  # parsed once
    assert checkpoints == {"base": "/ckpt/model.pt", "actin": "/elsewhere/actin.pth"}
    assert parser.get("_meta_")["version"] == "1.2.3"


def test_empty_overrides_leave_the_config_as_it_is(config_file):
    parser = inference_config(config_file, {"checkpoints": {}})
    assert parser.get_parsed_content("checkpoints") == {"base": "./models/model.pt", "actin": "./models/model_actin.pt"}


def test_errors_name_the_file_and_the_id(config_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        inference_config(tmp_path / "nowhere.json")
    with pytest.raises(KeyError, match=r"inference\.json.*'missing#key'"):
        inference_config(config_file, {"missing": {"key": 1}})
