"""What ``compare`` measures on a trained model: test quality, and for autoencoders robustness and codes."""

from __future__ import annotations

import torch

from squeezelab.data import ImageDataset
from squeezelab.metrics import confusion_matrix, mse, per_class_accuracy, ssim
from squeezelab.models import jacobian_penalty
from squeezelab.train import Classification, Reconstruction, evaluate_split

NOISE_LEVELS = (0.1, 0.3)  # std of the Gaussian noise added to [0, 1] images for the robustness test
CONTRACTION_SAMPLES = 1000  # test images whose encoder Jacobian is measured exactly
PROBE_SAMPLES = 10_000  # training images whose codes fit the linear probe


def measure_autoencoder(model, transform, pool, test, device, seed) -> tuple[dict, torch.Tensor]:
    chunks: list[torch.Tensor] = []
    metrics = evaluate_split(model, Reconstruction(), test, transform, 256, device, outputs=chunks)
    reconstructions = torch.cat(chunks).clamp(0, 1)
    target = test.images.float() / 255
    measured = {
        "test_mse": metrics["mse"],
        "test_psnr": metrics["psnr"],
        "test_ssim": ssim(reconstructions, target).mean().item(),
    }
    model.eval()
    # Exact: as many projections as the code has numbers span the code space.
    sample = transform.normalize(test.images[:CONTRACTION_SAMPLES]).to(device)
    norms = [
        jacobian_penalty(model.encode, part, n_projections=model.code_size, create_graph=False).sqrt()
        for part in sample.split(100)
    ]
    measured["contraction"] = torch.cat(norms).mean().item()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sigma in NOISE_LEVELS:
            errors = []
            for part in target.split(512):
                noisy = (part + sigma * torch.randn(part.shape, generator=generator)).clamp(0, 1)
                errors.append(mse(model(noisy.to(device)).float().cpu(), part))
            measured[f"noisy_mse_{sigma}"] = torch.cat(errors).mean().item()
    measured["probe_acc"] = linear_probe(model, transform, pool, test, device, seed)
    return measured, reconstructions[:8]


def linear_probe(model, transform, pool, test, device, seed) -> float | None:
    """Accuracy on the test split of a logistic regression fitted to the codes of (part of) the training pool."""
    if pool.labels is None or test.labels is None:
        return None
    from sklearn.linear_model import LogisticRegression  # scikit-learn is slow to import; only probes need it
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    generator = torch.Generator().manual_seed(seed)
    fit_on = pool.subset(torch.randperm(len(pool), generator=generator)[:PROBE_SAMPLES])

    def codes(data: ImageDataset) -> torch.Tensor:
        with torch.no_grad():
            parts = [model.encode(transform.normalize(p).to(device)).float().cpu() for p in data.images.split(512)]
        return torch.cat(parts).numpy()

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(codes(fit_on), fit_on.labels.numpy())
    return float(probe.score(codes(test), test.labels.numpy()))


def measure_classifier(model, transform, pool, test, device, seed) -> tuple[dict, torch.Tensor]:
    chunks: list[torch.Tensor] = []
    metrics = evaluate_split(model, Classification(), test, transform, 256, device, outputs=chunks)
    logits = torch.cat(chunks)
    confusion = confusion_matrix(logits.argmax(1), test.labels, logits.shape[1])
    measured = {
        "test_acc1": metrics["acc1"],
        "test_acc5": metrics["acc5"],
        "test_loss": metrics["loss"],
        "per_class": per_class_accuracy(confusion).tolist(),
    }
    return measured, confusion
