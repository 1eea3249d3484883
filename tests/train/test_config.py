"""The training config: sections built, updated and stored by flat option name, and the options it refuses."""

import dataclasses
import json
import typing

import pytest

from squeezelab.errors import ConfigError, SqueezelabError
from squeezelab.train import PRESETS, TrainConfig, fit
from squeezelab.train.config import LEAVES, SECTIONS, OptimConfig, ScheduleConfig, validate_config


def _leaf_fields():
    """The leaf options as the command line finds them: the fields of each dataclass-typed section field."""
    hints = typing.get_type_hints(TrainConfig)
    for section in dataclasses.fields(TrainConfig):
        kind = hints[section.name]
        assert dataclasses.is_dataclass(kind) and section.default_factory is kind
        leaf_hints = typing.get_type_hints(kind)
        for leaf in dataclasses.fields(kind):
            yield section.name, leaf, leaf_hints[leaf.name]


def _plain(hint) -> bool:
    """A type the command line parses: bool, int, float, str, dict, a Literal, a tuple of int or str, or X | None."""
    if type(None) in typing.get_args(hint):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    simple = (bool, int, float, str, dict, tuple[int, ...], tuple[str, ...])
    return hint in simple or typing.get_origin(hint) is typing.Literal


def test_every_leaf_option_has_one_name_a_help_and_a_plain_type():
    leaves = list(_leaf_fields())
    names = [leaf.name for _, leaf, _ in leaves]
    assert len(names) == len(set(names)) == 55 and not set(names) & set(SECTIONS)
    assert {name: section for section, in_section in LEAVES.items() for name in in_section} == {
        leaf.name: section for section, leaf, _ in leaves
    }
    for _, leaf, hint in leaves:
        assert leaf.metadata["help"], leaf.name
        assert leaf.name == "model_kwargs" or leaf.default is not dataclasses.MISSING, leaf.name
        assert _plain(hint), (leaf.name, hint)
    assert [(leaf.name, hint) for _, leaf, hint in leaves if leaf.name in ("swa_lr", "low_res", "teachers")] == [
        ("swa_lr", float | None),
        ("low_res", tuple[int, ...] | None),
        ("teachers", tuple[str, ...]),
    ]


def test_flat_names_and_sections_build_the_same_config():
    flat = TrainConfig(lr=0.1, epochs=3, model_kwargs={"num_classes": 10}, low_res=16, teachers="runs/a")
    assert flat.optim.lr == 0.1 and flat.sched.epochs == 3 and flat.run.model_kwargs == {"num_classes": 10}
    assert flat.augment.low_res == (16,) and flat.objective.teachers == ("runs/a",)
    sectioned = TrainConfig(optim=OptimConfig(lr=0.1), sched=ScheduleConfig(epochs=3), model_kwargs={"num_classes": 10})
    assert sectioned.updated(low_res=[16], teachers=["runs/a"]) == flat
    assert TrainConfig(**flat.to_dict()) == TrainConfig.from_dict(flat.to_dict()) == flat
    # A flat name overrides the same option of a section given alongside; the section itself is not changed.
    given = OptimConfig(lr=0.1, momentum=0.5)
    assert TrainConfig(optim=given, lr=0.2).optim == OptimConfig(lr=0.2, momentum=0.5) and given.lr == 0.1


def test_to_dict_is_the_flat_dict_of_every_option():
    values = TrainConfig(lr=0.05, low_res=(16, 24)).to_dict()
    assert len(values) == 55 and set(values) == {leaf.name for _, leaf, _ in _leaf_fields()}
    assert values["lr"] == 0.05 and values["low_res"] == (16, 24) and values["validation_split"] == 0.1
    assert values["seed"] == 0 and values["tta_flip"] is False and values["model_kwargs"] == {}
    assert json.loads(json.dumps(values))["batch_size"] == 256


def test_updated_gives_a_new_config_and_leaves_the_old_one_as_it_was():
    base = TrainConfig()
    assert base.updated() is base
    changed = base.updated(lr=0.5, flip=True)
    assert changed.optim.lr == 0.5 and changed.augment.flip
    assert base.optim.lr == 1e-3 and not base.augment.flip
    assert changed.sched == base.sched and changed.sched is not base.sched  # no section is shared
    assert TrainConfig(lr=0.5, flip=True) == changed != base


def test_unknown_option_names_are_refused_by_name():
    with pytest.raises(ConfigError, match="unknown training option\\(s\\) bogus, nonsense$"):
        TrainConfig.from_dict({"lr": 0.1, "nonsense": 1, "bogus": 2})
    with pytest.raises(ConfigError, match="unknown training option\\(s\\) optimiser"):
        TrainConfig().updated(optimiser="sgd")


def test_validation_names_every_problem_at_once_and_passes_the_presets():
    with pytest.raises(ConfigError, match="^epochs must be >= 1, got 0; batch_size must be >= 1, got 0$"):
        validate_config(TrainConfig(epochs=0, batch_size=0), "classification", "cpu")
    with pytest.raises(ConfigError, match="an autoencoder trains with mse or bce, not 'cross_entropy'"):
        validate_config(TrainConfig(loss="cross_entropy"), "reconstruction", "cpu")
    validate_config(TrainConfig(fp16=True), "classification", "cuda")
    for name, cfg in PRESETS.items():
        kind = "reconstruction" if name.endswith("-ae") else "classification"
        validate_config(cfg, kind, "cpu")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"validation_split": 1.5}, "validation_split must be in"),
        ({"loss": "mse"}, "a classifier trains with cross_entropy"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"monitor": "val_bogus"}, "monitor 'val_bogus' is not a metric"),
        ({"alternate_flip": True}, "alternate_flip says how to flip: add --flip"),
        ({"low_res": 0}, "low_res sizes must be >= 1"),
        ({"low_res": (16, 0)}, "low_res sizes must be >= 1"),
        ({"low_res": 16, "low_res_share": 1.5}, "low_res_share in \\[0, 1\\]"),
        ({"cutout": -1}, "cutout must be >= 0"),
        ({"crop_padding": -1}, "crop_padding must be >= 0"),
        ({"crop_padding_mode": "edge"}, "crop_padding_mode must be zeros or reflect"),
        ({"crop_padding": 16, "crop_padding_mode": "reflect"}, "crop_padding must be below its side \\(16\\)"),
        ({"max_time": 0}, "max_time must be positive"),
        ({"val_every": 0}, "val_every must be >= 1"),
        ({"time_schedule": True}, "time_schedule follows the time budget: add --max-time"),
        ({"time_schedule": True, "max_time": 9, "schedule": "step"}, "the step schedule counts epochs"),
        ({"time_schedule": True, "max_time": 9, "lookahead": True}, "lookahead counts steps"),
        ({"swa_share": 1.0}, "swa_share must be in \\[0, 1\\)"),
        ({"swa_share": 0.3, "swa_lr": 0}, "swa_lr must be positive"),
        ({"swa_share": 0.3, "lookahead": True}, "choose one of swa_share and lookahead"),
        ({"nonsense": 1}, "unknown training option"),
    ],
)
def test_bad_options_are_user_errors(digits, options, message, tiny_squeezenet):
    with pytest.raises(SqueezelabError, match=message):
        fit(
            "squeezenet_cifar",
            digits,
            epochs=options.pop("epochs", 1),
            model_kwargs=tiny_squeezenet,
            verbose=0,
            **options,
        )


def test_progressive_resizing_and_cutout_are_refused_for_autoencoders(digits):
    with pytest.raises(SqueezelabError, match="low_res applies to classifiers only"):
        fit("dense_ae", digits, epochs=1, low_res=8, verbose=0)
    with pytest.raises(SqueezelabError, match="cutout applies to classifiers only"):
        fit("dense_ae", digits, epochs=1, cutout=4, verbose=0)


def test_low_res_sizes_survive_the_run_directory_json():
    ramp = TrainConfig(low_res=[16, 24])
    assert ramp.augment.low_res == (16, 24)
    assert TrainConfig.from_dict(json.loads(json.dumps(ramp.to_dict()))) == ramp
    # Run directories written before ramps existed hold one size.
    assert TrainConfig.from_dict({"low_res": 24}).augment.low_res == (24,)
