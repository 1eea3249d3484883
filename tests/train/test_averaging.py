"""Stochastic weight averaging: the average of its phase's epochs, with batch-norm statistics of its own."""

import copy

import pytest
import torch
from torch import nn

from squeezelab import load_model
from squeezelab.data import BatchTransform, DataSplits, split_validation
from squeezelab.train import TrainConfig, Trainer, create_model_for, evaluate_split, fit, task_for


def test_swa_averages_the_epochs_of_its_phase_and_recomputes_batch_norm(
    digits, tmp_path, monkeypatch, small_squeezenet
):
    snapshots = []
    train_epoch = Trainer.train_epoch

    def recording(self, epoch):
        result = train_epoch(self, epoch)
        snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return result

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    torch.manual_seed(0)
    model = create_model_for("squeezenet_cifar", small_squeezenet, digits.train)
    options = dict(epochs=4, batch_size=64, optimizer="sgd", lr=0.05, schedule="cosine", monitor="val_acc1")
    history = fit(model, digits, swa_share=0.5, run_dir=tmp_path / "run", verbose=0, **options)
    assert history.history["swa_epochs"] == [None, None, 1, 2]
    # After fit the model holds the mean of the weights after epochs 3 and 4 ...
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), (snapshots[2][name] + snapshots[3][name]) / 2, msg=name)
    # ... with BN statistics of its own: the stem's BN mean is the average over the training batches (in the
    # seeded order) of the mean of the stem's output.
    stem_bn = model.features[1]
    assert isinstance(stem_bn, nn.BatchNorm2d)
    train, _ = split_validation(digits.train, 0.1, 0)
    transform = BatchTransform(digits.mean, digits.std)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        inputs = transform(train.images[order], train=False)
        batch_means = [model.features[0](x).mean((0, 2, 3)) for x in inputs.split(64)]
    expected = torch.stack(batch_means).mean(0)
    torch.testing.assert_close(stem_bn.running_mean, expected)
    assert not torch.allclose(snapshots[3]["features.1.running_mean"], expected, atol=1e-3)
    # It is kept as swa.safetensors, and the last validation scored it.
    saved = load_model(tmp_path / "run" / "swa.safetensors")
    for (name, p), q in zip(model.state_dict().items(), saved.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    val = split_validation(digits.train, 0.1, 0)[1]
    scored = evaluate_split(saved, task_for(saved), val, transform, 64, torch.device("cpu"))
    assert scored["acc1"] == pytest.approx(history.history["val_acc1"][-1], abs=1e-6)


def test_swa_batch_norm_statistics_do_not_depend_on_the_storage_order(digits, small_squeezenet):
    # Image folders store the classes one after the other; the recomputed statistics of the averaged weights
    # must come from mixed batches all the same, or they fit neither training nor validation inputs.
    by_class = torch.argsort(digits.train.labels, stable=True)
    shuffled = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = create_model_for("squeezenet_cifar", small_squeezenet, digits.train)
    cfg = TrainConfig(validation_split=0.0, batch_size=64, swa_share=0.5)
    stats = []
    for order in (by_class, shuffled):
        splits = DataSplits.from_train(digits.train.subset(order))
        trainer = Trainer(copy.deepcopy(model), splits, cfg, None, verbose=0)
        trainer.swa.recompute_batch_norm(trainer.model)
        last_bn = [m for m in trainer.model.modules() if isinstance(m, nn.BatchNorm2d)][-1]
        stats.append(last_bn.running_var.clone())
    # Seeded: 4% apart in two mixed orders here, 14% with storage-order batches.
    torch.testing.assert_close(stats[0], stats[1], rtol=0.08, atol=1e-3)
