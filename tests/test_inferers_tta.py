"""DihedralTTAInferer against back-transformed predictions enumerated independently with NumPy."""

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer

from common.inferers import DihedralTTAInferer, dihedral_elements
from common.inferers.tta import apply_element


def numpy_d4(image: np.ndarray):
    """The 8 (forward, inverse) pairs of the square's symmetries on the last two axes, as rot90 and mirror."""
    pairs = []
    for k in range(4):
        for mirror in (False, True):

            def forward(a, k=k, mirror=mirror):
                a = np.rot90(a, k, axes=(-2, -1))
                return a[..., ::-1] if mirror else a

            def inverse(a, k=k, mirror=mirror):
                a = a[..., ::-1] if mirror else a
                return np.rot90(a, -k, axes=(-2, -1))

            pairs.append((forward, inverse))
    return pairs


def random_conv(seed: int) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    return torch.nn.Conv2d(2, 3, 3, padding=1).eval()


def test_groups_have_eight_and_four_distinct_elements():
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    for group, size in (("d4", 8), ("flips", 4)):
        moved = {
            (apply_element(image, e).shape, tuple(apply_element(image, e).flatten().tolist()))
            for e in dihedral_elements(group)
        }
        assert len(moved) == size
    with pytest.raises(ValueError, match="group"):
        dihedral_elements("d8")


def test_non_invariant_network_gives_the_mean_of_back_transformed_predictions():
    network = random_conv(0)
    image = torch.rand(2, 2, 12, 12)
    with torch.no_grad():
        tta = DihedralTTAInferer()(image, network).numpy()
        plain = network(image).numpy()
        expected = np.mean(
            [
                inverse(network(torch.from_numpy(forward(image.numpy()).copy())).numpy())
                for forward, inverse in numpy_d4(image)
            ],
            axis=0,
        )
    np.testing.assert_allclose(tta, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(tta - plain).max() > 1e-2  # the augmentation does change this network's output


def test_flips_on_non_square_images_with_a_sliding_window():
    network = random_conv(1)
    image = torch.rand(1, 2, 10, 17)
    window = SlidingWindowInferer(roi_size=(8, 8), overlap=0.5)
    with torch.no_grad():
        tta = DihedralTTAInferer(window, group="flips")(image, network).numpy()
        flips = [lambda a: a, lambda a: a[..., ::-1, :], lambda a: a[..., ::-1], lambda a: a[..., ::-1, ::-1]]
        expected = np.mean(
            [f(window(torch.from_numpy(f(image.numpy()).copy()), network).numpy()) for f in flips], axis=0
        )
    np.testing.assert_allclose(tta, expected, rtol=1e-5, atol=1e-6)


def test_equivariant_network_is_unchanged():
    network = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():  # a kernel with the symmetries of the square
        network.weight.copy_(torch.tensor([[1.0, 2.0, 1.0], [2.0, 5.0, 2.0], [1.0, 2.0, 1.0]]).view(1, 1, 3, 3))
        image = torch.rand(1, 1, 9, 13)
        torch.testing.assert_close(DihedralTTAInferer()(image, network), network(image))


class Gradient(torch.nn.Module):
    """(B, 1, H, W) -> (B, 3, H, W): [d/dy, d/dx, value]; an equivariant vector field plus a scalar."""

    def forward(self, x):
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
        dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
        dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
        return torch.cat([dy, dx, x], dim=1)


def test_vector_channels_are_sign_corrected_and_swapped():
    image = torch.rand(1, 1, 11, 11)
    plain = Gradient()(image)
    for group in ("d4", "flips"):
        corrected = DihedralTTAInferer(group=group, vector_channels=(0, 1))(image, Gradient())
        torch.testing.assert_close(corrected, plain)
    uncorrected = DihedralTTAInferer(group="d4")(image, Gradient())
    assert uncorrected[:, :2].abs().max() < 1e-6 < plain[:, :2].abs().max()  # the components cancel out
    torch.testing.assert_close(uncorrected[:, 2], plain[:, 2])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="vector_channels"):
        DihedralTTAInferer(vector_channels=(0,))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        DihedralTTAInferer()(torch.rand(1, 8, 8), random_conv(0))
    with pytest.raises(TypeError, match="tuple"):
        DihedralTTAInferer()(torch.rand(1, 2, 8, 8), lambda x: (x, x))
