import argparse
import json
import subprocess
import sys

import pytest

from squeezelab.cli import build_parser, main, parse_model_args, parse_shape
from squeezelab.errors import SqueezelabError
from squeezelab.models import list_models


def test_models_lists_every_model_with_published_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out
    assert "1,248,424" in out and "1,235,496" in out and "61,100,840" in out


def test_models_json(capsys):
    assert main(["models", "--kind", "autoencoder", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(list_models("autoencoder"))
    assert all(r["params"] > 0 and r["macs"] > 0 for r in rows)


def test_profile_json(capsys):
    args = ["profile", "squeezenet_cifar", "--batch", "4", "--repeats", "2", "--num-classes", "100", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_shape"] == [3, 32, 32] and result["batch_size"] == 4
    assert result["flops"] == 2 * result["macs"]


def test_profile_table_with_model_args_and_input(capsys):
    assert main(["profile", "squeeze_ae", "--input", "1x16x16", "--arg", "code_size=8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "squeeze_ae at 1x16x16" in out and "MACs / sample" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["profile", "squeezenet11"], "unknown model 'squeezenet11'; did you mean squeezenet1_1"),
        (["profile", "squeezenet1_0", "--input", "3x8x8"], "expects input of shape (N, 3, H, W) with H, W >= 21"),
        (["profile", "squeezenet1_0", "--input", "3by8"], "--input must look like CxHxW"),
        (["profile", "dense_ae", "--num-classes", "3"], "takes no --num-classes"),
        (["profile", "squeeze_ae", "--arg", "code_sze=3"], "does not take code_sze"),
        (["profile", "squeeze_ae", "--arg", "oops"], "--arg takes KEY=VALUE"),
        (["profile", "squeezenet1_1", "--batch", "0"], "--batch must be at least 1"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_usage_errors_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["profile", "squeezenet1_1", "--batch", "x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid int value" in err and err.count("\n") == 1


def test_size_lists_parse_and_bad_ones_exit_2_with_one_line(capsys):
    args = build_parser().parse_args(["train", "--low-res", "16,20,24"])
    assert args.low_res == (16, 20, 24)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--low-res", "16,x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--low-res: expected integers separated by commas" in err and err.count("\n") == 1


def test_none_switches_off_an_optional_option_a_preset_set(capsys):
    from squeezelab.cli.train import train_options

    args = build_parser().parse_args(["train", "--preset", "fast-cifar10", "--max-time", "none", "--grad-clip", "2"])
    assert train_options(args)["max_time"] is None and train_options(args)["grad_clip"] == 2.0
    assert "max_time" not in train_options(build_parser().parse_args(["train"]))  # not given: the preset's
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--max-time", "soon"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--max-time: invalid float value: 'soon'" in err and err.count("\n") == 1


def test_installed_command_has_no_traceback_on_bad_name():
    result = subprocess.run(
        [sys.executable, "-m", "squeezelab", "profile", "nosuchnet"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("squeezelab: error: unknown model 'nosuchnet'")
    assert "Traceback" not in result.stderr


COMMANDS = [
    "models",
    "weights",
    "profile",
    "train",
    "evaluate",
    "predict",
    "export",
    "compare",
    "demo",
    "compress",
    "decompress",
    "codec",
]


def test_the_parser_has_every_command():
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(sub.choices) == COMMANDS


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_every_command_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "\nexamples:\n  squeezelab " in out
    assert out.rstrip().splitlines()[-1].startswith("  squeezelab ")  # the examples close the help


def test_parsers():
    assert parse_shape("3x224x224") == (3, 224, 224)
    assert parse_model_args(["bypass=simple", "code_size=16", "stages=(1, 2)"]) == {
        "bypass": "simple",
        "code_size": 16,
        "stages": (1, 2),
    }
    flags = parse_model_args(["batch_norm=false", "a=True", "b=FALSE", "c=False"])
    assert flags == {"batch_norm": False, "a": True, "b": False, "c": False}
    assert all(type(v) is bool for v in flags.values())
    with pytest.raises(SqueezelabError):
        parse_shape("0x2x2")


@pytest.mark.parametrize(
    "text, channels_optional, shape",
    [
        ("3x64x64", False, (3, 64, 64)),
        ("3,64,64", False, (3, 64, 64)),
        ("3x64x64", True, (3, 64, 64)),
        ("64x48", True, (64, 48)),
    ],
)
def test_parse_shape_takes_cxhxw_and_with_channels_optional_hxw(text, channels_optional, shape):
    assert parse_shape(text, channels_optional=channels_optional) == shape


@pytest.mark.parametrize(
    "text, channels_optional, message",
    [
        ("64x64", False, "--input must look like CxHxW, e.g. 3x224x224, got '64x64'"),
        ("3by8", False, "--input must look like CxHxW, e.g. 3x224x224, got '3by8'"),
        ("64", True, "--input must look like CxHxW or HxW, e.g. 3x64x64 or 64x64, got '64'"),
        ("3x0x4", True, "--input must look like CxHxW or HxW, e.g. 3x64x64 or 64x64, got '3x0x4'"),
        ("1x2x3x4", True, "--input must look like CxHxW or HxW, e.g. 3x64x64 or 64x64, got '1x2x3x4'"),
    ],
)
def test_parse_shape_names_the_form_it_wants(text, channels_optional, message):
    with pytest.raises(SqueezelabError) as error:
        parse_shape(text, channels_optional=channels_optional)
    assert str(error.value) == message
