"""The flags generated from a dataclass (flat or in sections), and the compress flags made that way."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from squeezelab.cli import build_parser, main
from squeezelab.cli.compress import compress_config
from squeezelab.cli.flags import add_dataclass_flags, given_options, leaf_fields
from squeezelab.compress import CompressConfig
from squeezelab.compress.pipeline import CompressConfig as PipelineCompressConfig
from squeezelab.train import TrainConfig


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Flat:
    name: str = _opt("x", "a name")
    rate: float = _opt(0.5, "a rate")
    switch: bool = _opt(False, "a switch")
    mode: Literal["a", "b"] = _opt("a", "a mode")
    sizes: tuple[int, ...] | None = _opt(None, "sizes", none="every size")
    limit: float | None = _opt(None, "a limit")


@dataclass
class Inner:
    rate: float = _opt(0.5, "a rate")
    switch: bool = _opt(False, "a switch")


@dataclass
class Outer:
    mode: Literal["a", "b"] = _opt("a", "a mode")
    sizes: tuple[int, ...] | None = _opt(None, "sizes", none="every size")
    limit: float | None = _opt(None, "a limit")


@dataclass
class Nested:
    name: str = _opt("x", "a name")
    inner: Inner = field(default_factory=Inner)
    outer: Outer = field(default_factory=Outer)


def _parser(cls, skip=()):
    parser = argparse.ArgumentParser(prog="t")
    add_dataclass_flags(parser, cls, skip)
    return parser


@pytest.mark.parametrize("cls", [Flat, Nested])
def test_flat_and_sectioned_dataclasses_give_the_same_flags_and_flat_options(cls):
    parser = _parser(cls)
    assert _parser(cls).parse_args([]) == argparse.Namespace(
        name=None, rate=None, switch=None, mode=None, sizes=None, limit=None
    )
    args = parser.parse_args(["--rate", "2", "--switch", "--mode", "b", "--sizes", "16,24", "--limit", "none"])
    assert given_options(args, cls) == {"rate": 2.0, "switch": True, "mode": "b", "sizes": (16, 24), "limit": None}
    help_text = " ".join(parser.format_help().split())
    for line in (
        "--name NAME a name (default: x)",
        "--rate RATE a rate (default: 0.5)",
        "--switch, --no-switch a switch (default: False)",
        "--mode {a,b} a mode (default: a)",
        "--sizes N[,N...]|none sizes (default: None; none: every size)",
        "--limit LIMIT|none a limit (default: None; none: off)",
    ):
        assert line in help_text


def test_skipped_fields_get_no_flag():
    args = _parser(Nested, skip={"name", "limit"}).parse_args(["--rate", "1"])
    assert not hasattr(args, "name") and not hasattr(args, "limit")
    assert given_options(args, Nested, skip={"name", "limit"}) == {"rate": 1.0}


def test_every_training_option_but_the_own_ones_is_a_flag_with_its_dataclass_default():
    leaves = {f.name: f for f, _ in leaf_fields(TrainConfig)}
    assert set(leaves) == set(TrainConfig().to_dict())
    parser = build_parser()
    args = parser.parse_args(["train"])
    for name in set(leaves) - {"model", "model_kwargs", "data"}:
        assert getattr(args, name) is None  # not given: the preset's value stays
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    help_text = " ".join(sub.choices["train"].format_help().split())
    assert f"(default: {TrainConfig().to_dict()['batch_size']})" in help_text


def test_compress_config_import_paths_are_one_class():
    assert CompressConfig is PipelineCompressConfig


def test_compress_flags_come_from_compress_config_with_its_defaults():
    parser = build_parser()
    assert compress_config(parser.parse_args(["compress"])) == CompressConfig()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    help_text = " ".join(sub.choices["compress"].format_help().split())
    for f in dataclasses.fields(CompressConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "seed":
            assert flag not in help_text
        else:
            assert flag in help_text and f"{f.metadata['help']} (default: {f.default}" in " ".join(help_text.split())


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--bits", "6"], {"conv_bits": 6, "fc_bits": 6}),
        (["--bits", "6", "--fc-bits", "4"], {"conv_bits": 6, "fc_bits": 4}),
        (["--conv-bits", "7"], {"conv_bits": 7, "fc_bits": 5}),
        (["--density", "0.5", "--scope", "global", "--coder", "huffman"], {"density": 0.5, "scope": "global"}),
        (["--centroid-lr-scale", "0.01", "--lr-scale", "0.2"], {"centroid_lr_scale": 0.01, "lr_scale": 0.2}),
    ],
)
def test_compress_flags_build_the_config(argv, expected):
    cfg = compress_config(build_parser().parse_args(["compress", *argv]))
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_compress_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compress", "--model", "dense_ae", "--scope", "everywhere"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--scope: invalid choice: 'everywhere'" in err and err.count("\n") == 1


def test_stages_json_records_the_config_given(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compress", "--model", "dense_ae", "--arg", "code_size=8", "--density", "0.5", "--bits", "4"]
    assert main([*argv, "--prune-steps", "1", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "stages.json").read_text())["config"]
    assert config == dataclasses.asdict(CompressConfig(density=0.5, prune_steps=1, conv_bits=4, fc_bits=4))
    assert "compressed model:" in capsys.readouterr().out
