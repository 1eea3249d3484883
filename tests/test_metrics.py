import math

import pytest
import torch

from squeezelab.errors import InputShapeError
from squeezelab.metrics import confusion_matrix, mse, per_class_accuracy, psnr, ssim, topk_correct


def test_topk_counts_labels_among_the_best_logits():
    logits = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.0],  # label 1 ranks first
            [0.5, 0.4, 0.3, 0.2],  # label 1 ranks second
            [0.5, 0.4, 0.3, 0.2],  # label 3 ranks last
        ]
    )
    labels = torch.tensor([1, 1, 3])
    counts = topk_correct(logits, labels, ks=(1, 2, 3))
    assert {k: v.item() for k, v in counts.items()} == {1: 1, 2: 2, 3: 2}
    assert all(v.dim() == 0 for v in counts.values())


def test_topk_clamps_k_to_the_class_count():
    counts = topk_correct(torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]), ks=(1, 5))
    assert counts[5].item() == 6


def test_confusion_matrix_and_per_class_accuracy():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 0])
    confusion = confusion_matrix(preds, labels, num_classes=4)
    expected = torch.tensor([[1, 1, 0, 0], [1, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert confusion.dtype == torch.int64 and torch.equal(confusion, expected)
    accuracy = per_class_accuracy(confusion)
    assert accuracy[:3].tolist() == pytest.approx([0.5, 2 / 3, 0.0])
    assert math.isnan(accuracy[3])  # class 3 has no samples


def test_confusion_matrix_rejects_out_of_range_classes():
    with pytest.raises(ValueError, match="class indices"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), num_classes=3)


def test_mse_and_psnr_of_a_constant_offset():
    x = torch.rand(4, 1, 28, 28) * 0.8
    assert mse(x + 0.1, x).tolist() == pytest.approx([0.01] * 4, abs=1e-6)
    assert psnr(x + 0.1, x).tolist() == pytest.approx([20.0] * 4, abs=1e-3)
    assert psnr(x + 0.2, x, data_range=2.0).tolist() == pytest.approx([20.0] * 4, abs=1e-3)
    assert torch.isinf(psnr(x, x)).all()


def test_mse_is_per_sample():
    x = torch.zeros(2, 3, 8, 8)
    x_hat = torch.stack([torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.5)])
    assert mse(x_hat, x).tolist() == pytest.approx([0.0, 0.25])


@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 32, 32), (2, 1, 8, 8)])
def test_ssim_of_identical_images_is_one(shape):
    x = torch.rand(shape)
    assert ssim(x, x).tolist() == pytest.approx([1.0] * shape[0], abs=1e-6)


def test_ssim_decreases_with_noise():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 28, 28, generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    scores = [ssim(x + level * noise, x).item() for level in (0.0, 0.05, 0.1, 0.2, 0.4)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)


def test_ssim_rejects_mismatched_or_non_image_batches():
    with pytest.raises(InputShapeError):
        ssim(torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 27))
    with pytest.raises(InputShapeError):
        ssim(torch.rand(2, 28, 28), torch.rand(2, 28, 28))


def _reference_ssim(a: torch.Tensor, b: torch.Tensor, size: int, sigma: float = 1.5) -> float:
    """SSIM of two (H, W) images written out window by window, in float64."""
    a, b = a.double(), b.double()
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    w = torch.outer(g, g) / torch.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            pa, pb = a[i : i + size, j : j + size], b[i : i + size, j : j + size]
            mu_a, mu_b = (w * pa).sum(), (w * pb).sum()
            var_a, var_b = (w * (pa - mu_a) ** 2).sum(), (w * (pb - mu_b) ** 2).sum()
            cov = (w * (pa - mu_a) * (pb - mu_b)).sum()
            values.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return torch.stack(values).mean().item()


@pytest.mark.parametrize("size, window", [(28, 11), (8, 8)])  # 8x8 is smaller than the window: it shrinks to 8
def test_ssim_matches_the_formula_window_by_window(size, window):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, size, size, generator=generator)
    x_hat = (x + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    assert ssim(x_hat, x).item() == pytest.approx(_reference_ssim(x_hat[0, 0], x[0, 0], window), abs=1e-5)


@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 32, 32)])
def test_ssim_agrees_with_scikit_image(shape):
    metrics = pytest.importorskip("skimage.metrics")
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(shape, generator=generator)
    x_hat = (x + 0.15 * torch.randn(shape, generator=generator)).clamp(0, 1)
    expected = [
        metrics.structural_similarity(
            x_hat[i].permute(1, 2, 0).double().numpy(),
            x[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=2,
        )
        for i in range(shape[0])
    ]
    assert ssim(x_hat, x).tolist() == pytest.approx(expected, abs=1e-4)
