"""The MEDIAR bundle never scores an image without true cells as perfect, and its folder inference reads only
images: label files kept beside them (NeurIPS naming) are not segmented."""

import shutil

import numpy as np
import pytest
import torch
from ignite.engine import Events

from common.data.synthetic import write_dataset
from common.io import image_folder_datalist
from common.metrics import cellseg_f1
from tests.support.bundles import REPO, load_spec, parser_for

BUNDLE = REPO / "bundles" / "mediar_cell_segmentation"


@pytest.fixture(scope="module")
def neurips(tmp_path_factory):
    synthetic = dict(load_spec(BUNDLE)["synthetic"])  # the bundle suite's tiny images
    return write_dataset(synthetic.pop("layout"), tmp_path_factory.mktemp("mediar") / "neurips", **synthetic)


def test_validation_scores_the_challenge_metric_so_an_untrained_network_is_not_perfect(neurips, tmp_path):
    parser = parser_for(BUNDLE, "train.json")
    parser.update({**load_spec(BUNDLE)["overrides"], "dataset_dir": str(neurips), "bundle_root": str(tmp_path)})
    torch.manual_seed(0)
    evaluator = parser.get_parsed_content("validate#evaluator")
    outputs = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: outputs.extend(engine.state.output))
    evaluator.run()
    expected = [cellseg_f1(item["label"], item["pred"])["f1"] for item in outputs]
    assert len(outputs) == 2 and any(item["label"].max() > 0 for item in outputs)
    # F1 at IoU 0.5 after border removal scored these two images 1.0 (both empty once border cells went)
    assert evaluator.state.metrics["val_f1"] == pytest.approx(np.mean(expected)) == 0.0


def test_inference_skips_label_files_in_its_input_folder(neurips, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(neurips / "images", folder)
    for label in (neurips / "labels").iterdir():
        shutil.copy(label, folder)
    assert len(image_folder_datalist(str(folder))) == 20  # the label files are images too
    parser = parser_for(BUNDLE, "inference.json")
    parser.update({"dataset_dir": str(folder), "output_dir": str(tmp_path / "out")})
    inputs = sorted(item["image"] for item in parser.get_parsed_content("datalist"))
    assert inputs == sorted(str(path) for path in folder.glob("cell_?????.*")) and len(inputs) == 10
