"""Training: ``fit``, the ``Trainer`` it runs, the typed ``TrainConfig`` and its presets, the tasks.

Higher layers (inference, compress, experiments) import what they need from here, not from the modules.
"""

from squeezelab.errors import TrainingDiverged
from squeezelab.train.config import PRESETS, TrainConfig, preset
from squeezelab.train.device import resolve_device
from squeezelab.train.prepare import create_model_for
from squeezelab.train.tasks import Classification, Distillation, Reconstruction, evaluate_split, task_for
from squeezelab.train.trainer import History, Trainer, fit

__all__ = [
    "PRESETS",
    "Classification",
    "Distillation",
    "History",
    "Reconstruction",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "create_model_for",
    "evaluate_split",
    "fit",
    "preset",
    "resolve_device",
    "task_for",
]
