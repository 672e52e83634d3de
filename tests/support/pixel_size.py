"""The pixel-size experiment of ``tests/test_pixel_size.py`` (also drawn by ``scripts/make_pictures.py``): one
synthetic nuclei scene imaged at the training pixel size and at half of it, a small U-Net trained on the former,
and the DSB bundle's ``inference.json`` run on each with and without ``match_pixel_size``."""

from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import UNet
from monai.utils import set_determinism

from common.data.scene import Morphology, Optics, render_scene
from common.io import read_image, write_image
from common.transforms import instance_to_boundary_targets
from tests.support.bundles import REPO

DSB = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"

TRAINING_UM = 0.5
NUCLEI = Morphology(cell_radius=(8, 14), coverage=0.3, touching=0.6, elongation=(1.0, 1.6), irregularity=0.08,
                    nucleus_size=None, lipid_droplets=0)  # fmt: skip
SMALL_NET = {"_target_": "UNet", "spatial_dims": 2, "in_channels": 3, "out_channels": 2,
             "channels": [16, 32, 64], "strides": [2, 2], "num_res_units": 1}  # fmt: skip


def nuclei_scene(seed: int, size: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """uint16 nuclear stain and labels of one scene, ``factor`` times finer than the training pixel size."""
    scene = render_scene(
        (size * factor, size * factor),
        morphology=NUCLEI.scaled(factor),
        optics=Optics(psf_sigma=factor),
        seed=seed,
        fluorescence=("nucleus",),
    )
    return np.clip(np.rint(scene.fluorescence["nucleus"] * 4000), 0, 65535).astype(np.uint16), scene.labels


def dsb_parser(root: Path, overrides: dict) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(DSB / "configs" / "inference.json"))
    parser.update({"network_def": SMALL_NET, "bundle_root": str(root), "dataloader#num_workers": 0, **overrides})
    return parser


def train_small_network(root: Path) -> None:
    """A small U-Net trained (200 iterations, ~10 s) on nuclei at the training pixel size, through the bundle's
    own preprocessing and its targets (nucleus, touching boundary); saved as ``root/models/model.pt``."""
    set_determinism(0)
    preprocessing = dsb_parser(root, {}).get_parsed_content("preprocessing")
    images, targets = [], []
    for seed in range(6):
        pixels, labels = nuclei_scene(100 + seed, 128, 1)
        write_image(root / f"train_{seed}.tif", pixels, pixel_size=(TRAINING_UM, TRAINING_UM))
        images.append(preprocessing({"image": str(root / f"train_{seed}.tif")})["image"].as_tensor())
        targets.append(instance_to_boundary_targets(labels))
    x, y = torch.stack(images), torch.stack(targets)
    torch.manual_seed(0)
    network = UNet(**{key: value for key, value in SMALL_NET.items() if key != "_target_"})
    optimizer = torch.optim.Adam(network.parameters(), 3e-3)
    weights = torch.tensor([1.0, 5.0]).view(1, 2, 1, 1)
    for _ in range(200):
        batch, turns = torch.randint(0, len(x), (4,)), int(torch.randint(0, 4, ()))
        xb, yb = torch.rot90(x[batch], turns, (2, 3)), torch.rot90(y[batch], turns, (2, 3))
        logits = network(xb)
        probability = torch.sigmoid(logits)
        dice = 1 - (2 * (probability * yb).sum((2, 3)) + 1) / (probability.sum((2, 3)) + yb.sum((2, 3)) + 1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yb, pos_weight=weights) + dice.mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    (root / "models").mkdir()
    torch.save(network.state_dict(), root / "models" / "model.pt")


def dsb_infer(root: Path, name: str, pixels: np.ndarray, pixel_um: float, match: bool) -> np.ndarray:
    """Instance labels of the DSB bundle's inference.json (the small network) for one image."""
    folder = root / f"in_{name}"
    write_image(folder / f"{name}.tif", pixels, pixel_size=(pixel_um, pixel_um))
    parser = dsb_parser(
        root,
        {
            "dataset_dir": str(folder),
            "output_dir": str(root / f"out_{name}"),
            "match_pixel_size": match,
            "training_pixel_size": [TRAINING_UM, TRAINING_UM],
            "patch_size": [128, 128],
        },
    )
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("run")
    return read_image(root / f"out_{name}" / f"{name}_label.tiff")
