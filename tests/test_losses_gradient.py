"""Sobel gradient L1 loss of the DSB headline run, against scipy.ndimage.sobel."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from common.losses import SobelGradientL1Loss, WeightedDiceBCELoss, sobel_gradients


def scipy_sobel(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (2, H, W) x and y Sobel derivatives, zero outside the image, in float64."""
    return np.stack([ndimage.sobel(image, axis=axis, mode="constant", cval=0.0) for axis in (1, 0)])


def test_sobel_gradients_match_scipy_per_channel():
    image = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gradients = sobel_gradients(image)
    assert gradients.shape == (2, 3, 2, 9, 11)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(gradients[b, c].numpy(), scipy_sobel(image[b, c].numpy()), atol=1e-12)


def test_sobel_kernel_scale_and_direction_on_a_ramp():
    ramp = torch.arange(6, dtype=torch.float32).repeat(5, 1)[None, None]  # +1 per pixel to the right
    gradients = sobel_gradients(ramp)[0, 0]
    assert torch.all(gradients[0, 1:-1, 1:-1] == 8.0)  # (1 + 2 + 1) * (x+1 - (x-1)): unnormalised kernel
    assert torch.all(gradients[1, 1:-1, 1:-1] == 0.0)


def test_loss_compares_the_sigmoid_of_the_chosen_channel_with_its_target():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 16, 16, generator=generator, dtype=torch.float64)
    target = (torch.rand(2, 2, 16, 16, generator=generator) > 0.7).double()
    probabilities, truth = torch.sigmoid(logits).numpy(), target.numpy()
    expected = np.mean([np.abs(scipy_sobel(probabilities[b, 1]) - scipy_sobel(truth[b, 1])) for b in range(2)])
    loss = SobelGradientL1Loss(channels=[1])(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    on_probabilities = SobelGradientL1Loss(channels=[1], sigmoid=False)(torch.sigmoid(logits), target)
    assert on_probabilities.item() == pytest.approx(expected, rel=1e-12)
    both = np.mean(
        [np.abs(scipy_sobel(probabilities[b, c]) - scipy_sobel(truth[b, c])) for b in range(2) for c in range(2)]
    )
    assert SobelGradientL1Loss(channels=None)(logits, target).item() == pytest.approx(both, rel=1e-12)


def test_added_to_dice_bce_with_its_weight_and_passes_gradients():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 2, 16, 16, generator=generator, requires_grad=True)
    target = (torch.rand(2, 2, 16, 16, generator=generator) > 0.7).float()
    base = WeightedDiceBCELoss()(logits, target)
    gradient = SobelGradientL1Loss(channels=[1])(logits, target)
    combined = WeightedDiceBCELoss(gradient_weight=0.5)(logits, target)
    assert combined.item() == pytest.approx(base.item() + 0.5 * gradient.item(), rel=1e-6)
    combined.backward()
    assert logits.grad is not None and logits.grad[:, 1].abs().sum() > 0


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="shapes differ"):
        SobelGradientL1Loss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        SobelGradientL1Loss(channels=[2])(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        sobel_gradients(torch.zeros(4, 4))
