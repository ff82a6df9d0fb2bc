"""Command-line flags generated from the configuration dataclasses: each option is declared
once (name, type, default, help and choices come from the field), every current spelling keeps
working, and the choices follow the registries."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from negrec.cli import build_parser
from negrec.cli.data_cmd import SOURCE_FLAGS, spec_from_args
from negrec.cli.flags import Flag, add_flags, flag_values, given_flags
from negrec.cli.train_cmd import TRAIN_FLAGS
from negrec.models import model_kinds
from negrec.train.data_spec import DataSpec, sources
from negrec.train.objectives import OBJECTIVES


def test_every_data_spec_field_is_a_flag():
    keys = {f.key for f in SOURCE_FLAGS}
    fields = {f.name for f in dataclasses.fields(DataSpec)} - {"sim"}
    assert fields <= keys
    assert {"sim.num_users", "sim.events_per_user"} <= keys


def test_the_parsed_defaults_are_the_data_spec_defaults():
    args = build_parser().parse_args(["data", "stats", "--data", "simulated"])
    spec = spec_from_args(args)
    assert spec == DataSpec(source="simulated")
    assert given_flags(args, DataSpec, SOURCE_FLAGS, defaults=True)[0][0].key == "source"


def test_choices_come_from_the_registries(capsys):
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    options = {a.dest: a for a in train._actions}
    assert options["objective"].choices == list(OBJECTIVES)
    assert options["model_kind"].choices == list(model_kinds())
    assert options["source"].choices == list(sources())
    assert options["objective"].help.startswith("the training objective")
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--out", "x", "--objective", "ntr"])
    assert "invalid choice: 'ntr'" in capsys.readouterr().err


@dataclasses.dataclass
class _Section:
    width: int = dataclasses.field(default=3, metadata={"help": "how wide"})


@dataclasses.dataclass
class _Root:
    name: str = dataclasses.field(default="a", metadata={"help": "a name", "choices": ("a", "b")})
    rate: float | None = None
    verbose: bool = dataclasses.field(default=True, metadata={"help": "talk"})
    section: _Section = dataclasses.field(default_factory=_Section)


def test_a_flag_reads_type_default_help_and_choices_from_its_field():
    flags = (Flag("name"), Flag("rate"), Flag("section.width", ("--width", "-w"), dest="w"),
             Flag("verbose", ("--quiet",), dest="quiet", negate=True))
    complete, override = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_flags(complete, _Root, flags, defaults=True)
    add_flags(override, _Root, flags, defaults=False)
    args = complete.parse_args([])
    assert flag_values(args, flags) == {"name": "a", "rate": None, "section.width": 3,
                                        "verbose": True}
    assert given_flags(args, _Root, flags, defaults=True) == []
    args = override.parse_args(["-w", "5", "--quiet", "--rate", "0.5"])
    assert flag_values(args, flags) == {"name": None, "rate": 0.5, "section.width": 5,
                                        "verbose": False}
    assert [f.key for f, _ in given_flags(args, _Root, flags, defaults=False)] == [
        "rate", "section.width", "verbose"]
    help_text = " ".join(complete.format_help().split())
    assert "--width W, -w W how wide" in help_text and "--quiet do not talk" in help_text
    with pytest.raises(SystemExit):
        complete.parse_args(["--name", "c"])


def test_every_train_flag_is_a_documented_config_key():
    from negrec.cli.flags import field_of
    from negrec.train.config import TrainConfig

    for flag in TRAIN_FLAGS:
        field, _ = field_of(TrainConfig, flag.key)
        assert field.metadata.get("help"), flag.key
