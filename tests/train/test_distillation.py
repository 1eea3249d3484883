"""Knowledge distillation: the loss against the teachers' softened predictions, and a student that learns it."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from squeezelab import fit, load_model
from squeezelab.data import BatchTransform, DataSplits, ImageDataset, load_dataset, split_validation
from squeezelab.errors import SqueezelabError
from squeezelab.train.tasks import Classification, Distillation


class _Fixed(nn.Module):
    """The same logits for every image; remembers the input it was given."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)
        self.seen = None

    def forward(self, x):
        self.seen = x
        return self.logits.expand(len(x), -1)


def test_loss_is_the_scaled_kl_to_the_teachers_mean_softened_prediction():
    teachers = [_Fixed([2.0, 0.0, -1.0]), _Fixed([0.0, 1.0, 0.0])]
    student = torch.tensor([[0.5, 0.5, 0.0], [1.0, -1.0, 3.0]])
    temperature = 3.0
    target = (F.softmax(teachers[0].logits / 3, -1) + F.softmax(teachers[1].logits / 3, -1)) / 2
    log_student = F.log_softmax(student / 3, -1)
    expected = 9 * (target * (target.log() - log_student)).sum(-1).mean()
    loss = Distillation(teachers, 0.5, temperature).loss(student, torch.zeros(2, 1, 4, 4))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # A student that predicts the target exactly has nothing left to learn from it.
    matching = (temperature * target.log()).expand(2, -1)
    assert Distillation(teachers, 0.5, temperature).loss(matching, torch.zeros(2, 1, 4, 4)).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_training_loss_mixes_labels_and_teachers_on_full_size_batches_only():
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0])
    student, teacher = _Fixed([1.0, 0.0, 0.0]), _Fixed([0.0, 0.0, 2.0])
    transform = BatchTransform((0.5,), (0.25,))
    plain, _, logits = Classification(label_smoothing=0.1).batch(student, images, labels, transform, True)
    distillation = Distillation([teacher], 0.75, 2.0)
    task = Classification(label_smoothing=0.1, distillation=distillation)
    mixed, _, _ = task.batch(student, images, labels, transform, True)
    soft = distillation.loss(logits, transform.normalize(images))
    assert mixed.item() == pytest.approx(0.25 * plain.item() + 0.75 * soft.item(), rel=1e-6)
    assert torch.equal(teacher.seen, student.seen)  # the teacher scores the very batch the student sees
    # Validation reports the label loss alone, and while progressive resizing shrinks the batch so does training.
    validation, _, _ = task.batch(student, images, labels, transform, False)
    assert validation.item() == pytest.approx(
        Classification().batch(student, images, labels, transform, False)[0].item()
    )
    teacher.seen = None
    small = BatchTransform((0.5,), (0.25,), size=4)
    resized, _, _ = task.batch(student, images, labels, small, True)
    assert resized.item() == pytest.approx(Classification(0.1).batch(student, images, labels, small, True)[0].item())
    assert teacher.seen is None


def test_a_student_taught_by_its_teacher_alone_learns_its_predictions(
    digits, small_squeezenet, trained_classifier, tmp_path
):
    # With the whole weight on the teacher the labels play no part: what the student learns, it learns from it.
    options = dict(epochs=6, batch_size=64, optimizer="sgd", lr=0.05, schedule="onecycle", verbose=0)
    history = fit(
        "squeezenet_cifar",
        digits,
        model_kwargs=small_squeezenet,
        teachers=str(trained_classifier),
        distill_weight=1.0,
        distill_temperature=2.0,
        run_dir=tmp_path / "student",
        **options,
    )
    assert history.history["train_loss"][-1] < 0.5 * history.history["train_loss"][0]
    assert max(history.history["val_acc1"]) > 0.8  # chance is 0.1
    _, val = split_validation(digits.train, 0.1, 0)
    transform = BatchTransform(digits.mean, digits.std)
    with torch.no_grad():
        taught = load_model(tmp_path / "student")(transform.normalize(val.images)).argmax(1)
        teacher = load_model(trained_classifier)(transform.normalize(val.images)).argmax(1)
    assert (taught == teacher).float().mean() > 0.8
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["teachers"] == [str(trained_classifier)] and config["distill_weight"] == 1.0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"teachers": "/nonexistent/teacher"}, "teacher: checkpoint not found: /nonexistent/teacher"),
        ({"normalize": "half"}, "set --normalize as the teacher's run did"),
        ({"distill_weight": 1.5}, "distill_weight must be in \\[0, 1\\]"),
        ({"distill_temperature": 0.0}, "distill_temperature must be positive"),
    ],
)
def test_bad_teaching_options_are_user_errors(digits, small_squeezenet, trained_classifier, options, message):
    options = {"teachers": str(trained_classifier), **options}
    with pytest.raises(SqueezelabError, match=message):
        fit("squeezenet_cifar", digits, epochs=1, model_kwargs=small_squeezenet, verbose=0, **options)


def test_teachers_must_classify_the_same_images(digits, trained_classifier, tmp_path):
    with pytest.raises(SqueezelabError, match="autoencoder learns from its own reconstruction"):
        fit("dense_ae", digits, epochs=1, teachers=str(trained_classifier), verbose=0)
    fit("dense_ae", digits, epochs=1, run_dir=tmp_path / "ae", verbose=0)
    with pytest.raises(SqueezelabError, match="is not a classifier"):
        fit("squeezenet_cifar", digits, epochs=1, teachers=str(tmp_path / "ae"), verbose=0)
    renamed = ImageDataset(digits.train.images, digits.train.labels, [f"digit {c}" for c in digits.train.classes], "x")
    with pytest.raises(SqueezelabError, match="knows the classes"):
        fit("squeezenet_cifar", DataSplits.from_train(renamed), epochs=1, teachers=str(trained_classifier), verbose=0)
    rgb = load_dataset("digits", image_size=16, grayscale=False, progress=False)
    with pytest.raises(SqueezelabError, match="takes 1-channel images, this data has 3"):
        fit("squeezenet_cifar", rgb, epochs=1, teachers=str(trained_classifier), normalize="half", verbose=0)
