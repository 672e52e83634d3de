"""segmentation_models_pytorch (smp, the `test` extra) as the reference for networks built after it.

smp imports torchvision, whose package import registers Python implementations of its C++ operators
(``torchvision._meta_registrations``, ``_autograd_registrations``). Where torchvision's compiled operators do
not match the installed torch (``operator torchvision::nms does not exist``), that registration fails and so
does ``import segmentation_models_pytorch``, although smp's Unet and MAnet use none of those operators.
:func:`import_smp` then imports smp with the two registration modules left empty, in this test process only.
"""

import importlib
import sys
import types

import pytest
import torch

REGISTRATIONS = ("torchvision._meta_registrations", "torchvision._autograd_registrations")
PACKAGES = ("segmentation_models_pytorch", "timm", "torchvision")


def _forget_partial_imports() -> None:
    for name in [name for name in sys.modules if name.split(".")[0] in PACKAGES]:
        del sys.modules[name]


def import_smp():
    """The ``segmentation_models_pytorch`` module; the calling test is skipped, with the reason, if it cannot
    be imported even without torchvision's operator registrations."""
    try:
        return importlib.import_module("segmentation_models_pytorch")
    except ModuleNotFoundError as error:
        pytest.skip(f"segmentation_models_pytorch is not installed (pip install -e .[test]): {error}")
    except RuntimeError as error:  # torchvision's operator registration
        if "torchvision::" not in str(error):
            raise
    _forget_partial_imports()
    for name in REGISTRATIONS:
        sys.modules[name] = types.ModuleType(name)
    try:
        return importlib.import_module("segmentation_models_pytorch")
    except Exception as error:  # noqa: BLE001 - any failure means the reference is unavailable here
        pytest.skip(f"segmentation_models_pytorch cannot be imported: {type(error).__name__}: {error}")


def random_smp_unet(backbone: str, in_channels: int, classes: int, activation=None, seed: int = 0):
    """smp's ``Unet`` with seeded random weights and random batch-norm statistics (so that eval-mode outputs
    depend on every buffer), in eval mode."""
    smp = import_smp()
    torch.manual_seed(seed)
    network = smp.Unet(backbone, encoder_weights=None, in_channels=in_channels, classes=classes, activation=activation)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return network.eval()
