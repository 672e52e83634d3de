"""FolderRun: a folder inference goes on past bad files, reports them, skips finished inputs and resumes."""

import csv

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator
from monai.transforms import Compose, Lambdad, LoadImaged

from common.data import FailSoftDataset
from common.handlers import FolderRun, FolderRunError
from common.io import MicroscopyReader, SaveImageFiled, image_folder_datalist, write_image


def _folder(tmp_path, n=4, corrupt=("image_1.tif",)):
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for index in range(n):
        write_image(folder / f"image_{index}.tif", rng.integers(0, 255, (12, 10), dtype=np.uint8))
    for name in corrupt:
        (folder / name).write_bytes(b"not a tiff")
    return folder


def _infer(folder, out, overwrite=False, fail_on=None, num_workers=2):
    """A folder inference wired as the bundles' inference.json wire it; returns its FolderRun and the inputs it
    took (this rank's shard of those to do)."""
    run = FolderRun(out, overwrite=overwrite)
    datalist = run.pending(image_folder_datalist(folder))
    load = Compose([LoadImaged("image", reader=MicroscopyReader(), ensure_channel_first=True)])
    loader = DataLoader(FailSoftDataset(datalist, load), batch_size=1, num_workers=num_workers)

    def threshold(pred):
        if fail_on and fail_on in str(pred.meta["filename_or_obj"]):
            raise ValueError("post-processing failed")
        return (pred > 100).to(torch.uint8)

    post = Compose(
        [
            Lambdad("pred", threshold),
            SaveImageFiled("pred", out, postfix="_mask", suffix=".tif", kind="labels", overwrite=True),
        ]
    )
    evaluator = SupervisedEvaluator(
        device="cpu",
        val_data_loader=loader,
        network=torch.nn.Identity(),
        postprocessing=post,
        iteration_update=run.iteration,
        val_handlers=[run],
    )
    evaluator.run()
    return run, datalist


def _log(out):
    with open(out / "inference_log.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_bad_files_are_reported_and_the_rest_is_done(tmp_path):
    folder, out = _folder(tmp_path), tmp_path / "out"
    with pytest.raises(FolderRunError, match=r"1 input\(s\) failed, 3 done; see .*failures.csv"):
        _infer(folder, out)
    assert sorted(p.name for p in out.glob("*_mask.tif")) == [
        "image_0_mask.tif",
        "image_2_mask.tif",
        "image_3_mask.tif",
    ]
    with open(out / "failures.csv", newline="") as stream:
        failures = list(csv.DictReader(stream))
    assert [row["input"].endswith("image_1.tif") for row in failures] == [True]
    assert "image_1.tif" in failures[0]["error"]
    assert [row["status"] for row in _log(out)].count("done") == 3


def test_rerun_skips_done_inputs_and_overwrite_redoes_them(tmp_path, caplog):
    folder, out = _folder(tmp_path, corrupt=()), tmp_path / "out"
    with pytest.raises(FolderRunError):
        _infer(folder, out, fail_on="image_2")
    assert not (out / "image_2_mask.tif").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*_mask.tif")}
    with caplog.at_level("INFO"):
        _infer(folder, out)  # the failed input is done now; the others are not redone
    assert "3 of 4 inputs already done, skipped" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_mask.tif") if p.name in stamps} == stamps
    assert (out / "image_2_mask.tif").exists() and not (out / "failures.csv").exists()
    (out / "image_0_mask.tif").unlink()  # a deleted output is redone
    run = FolderRun(out)
    assert len(run.pending(image_folder_datalist(folder))) == 1
    assert len(FolderRun(out, overwrite=True).pending(image_folder_datalist(folder))) == 4


def test_killed_run_resumes_to_the_uninterrupted_outputs(tmp_path):
    folder = _folder(tmp_path, corrupt=())
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _infer(folder, whole)
    _infer(folder, cut)
    # as a kill leaves it: the last input's line cut short, its output half-written beside the target
    lines = (cut / "inference_log.csv").read_text().splitlines()
    (cut / "inference_log.csv").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])
    (cut / "image_3_mask.tif").unlink()
    (cut / ".image_3_mask.tif.partial").write_bytes(b"half")
    _infer(folder, cut)
    assert sorted(p.name for p in cut.iterdir() if p.name != "inference_log.csv") == sorted(
        p.name for p in whole.iterdir() if p.name != "inference_log.csv"
    )
    for path in whole.glob("*_mask.tif"):
        assert path.read_bytes() == (cut / path.name).read_bytes()
