"""fields.py: what a config field says of itself, the one typed reader, and errors that
each front end words its own way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from livecli.config import EditConfig, PrepareConfig, TrainConfig
from livecli.errors import ConfigError
from livecli.fields import (
    SettingError,
    Within,
    check_fields,
    flags,
    paper_settings,
    setting,
    settings_of,
    typed,
)


@dataclass(frozen=True)
class Sample:
    size: int = field(default=8, metadata=setting("The size."))
    shape: Literal["round", "square"] = field(default="round", metadata=setting("The shape."))
    colour: str | None = field(default=None, metadata=setting("The colour.", omit_default=True))
    note: str = field(default="", metadata=setting("A note.", inert=True))

    def __post_init__(self) -> None:
        check_fields(self)


def test_a_setting_error_names_fields_in_the_words_it_is_given():
    error = SettingError(
        Sample, "{size} must be at least 1, got {value}", "e.g. {size:4}; the default is {size.default}", value=0
    )
    assert (error.message, error.hint) == ("--size must be at least 1, got 0", "e.g. --size 4; the default is 8")
    keys = error.worded(lambda config, name, value=None: f"`{name}`" if value is None else f"{name} = {value}")
    assert (keys.message, keys.hint) == ("`size` must be at least 1, got 0", "e.g. size = 4; the default is 8")
    renamed = error.worded(flags({(Sample, "size"): "--sample-size"}))
    assert renamed.message == "--sample-size must be at least 1, got 0"
    # values are text, never read as fields, whatever their names
    quoted = SettingError(Sample, "{size} {words} {in_words} {config}", words="{shape}", in_words="x", config="y")
    assert quoted.message == "--size {shape} x y"


@dataclass(frozen=True)
class Ranged:
    scale: float = field(
        default=0.5, metadata=setting("The scale.", within=Within(0, 1, low_open=True, hint="e.g. {scale:0.5}"))
    )
    count: int = field(
        default=2, metadata=setting("The count.", within=Within(1, hint="the default is {count.default}"))
    )
    share: float = field(default=0.5, metadata=setting("The share.", within=Within(0, 1, words="between 0 and 1")))

    def __post_init__(self) -> None:
        check_fields(self)


@pytest.mark.parametrize(
    ("given", "message", "hint"),
    [
        ({"scale": 0.0}, "--scale must be positive, got 0", "e.g. --scale 0.5"),
        ({"scale": 1.5}, "--scale must be at most 1, got 1.5", "e.g. --scale 0.5"),
        ({"count": 0}, "--count must be at least 1, got 0", "the default is 2"),
        ({"share": -0.25}, "--share must be between 0 and 1, got -0.25", ""),
        ({"share": 2.0}, "--share must be between 0 and 1, got 2", ""),
    ],
)
def test_a_declared_range_is_checked_by_the_typed_reader_in_words(given, message, hint):
    assert Ranged(scale=1.0, count=1, share=0.0).scale == 1.0  # the bounds themselves are in
    with pytest.raises(SettingError) as wrong:
        Ranged(**given)
    assert (wrong.value.message, wrong.value.hint) == (message, hint)


def test_choices_are_checked_with_a_hint_from_the_default():
    assert Sample(shape="square").shape == "square"
    with pytest.raises(SettingError) as wrong:
        Sample(shape="oval")
    assert wrong.value.message == "--shape 'oval' is not one of round, square"
    assert wrong.value.hint == "--shape square, or leave it out"
    with pytest.raises(ConfigError, match="--crop 'round' is not one of none, square"):
        PrepareConfig(prompt="a car", object="car", crop="round")


def test_typed_reads_choices_as_text_and_numbers_as_their_kind():
    assert typed("oval", Literal["round", "square"]) == "oval"  # check_fields says whether it is a choice
    assert typed(1, float) == 1.0 and isinstance(typed(1, float), float)
    with pytest.raises(TypeError):
        typed(True, int)
    with pytest.raises(TypeError):
        typed(3, Literal["round", "square"])


def test_records_leave_out_inert_fields_and_new_ones_at_their_default():
    assert settings_of(Sample()) == {"size": 8, "shape": "round"}
    assert settings_of(Sample(colour="red", note="n")) == {"size": 8, "shape": "round", "colour": "red"}
    edit = EditConfig(replace=("car=<tok>",))
    assert "name" not in edit.settings() and "source_branch" not in edit.settings()
    assert EditConfig(replace=("car=<tok>",), source_branch="inversion").settings()["source_branch"] == "inversion"


def test_the_paper_preset_sets_each_method_setting_and_only_those():
    paper = paper_settings(EditConfig)
    assert paper["blend_scale"] == "max" and paper["guidance"] == 12.5  # differs from the default; the default
    assert "keep" not in paper and "seed" not in paper  # the user's, not the method's
    assert EditConfig(replace=("car=<tok>",), preset="paper").blend_scale == "max"
    assert paper_settings(TrainConfig)["steps"] == 500
    with pytest.raises(SettingError) as contradiction:
        TrainConfig(preset="paper", lr=1e-4)
    assert contradiction.value.message == "--lr 0.0001 contradicts --preset paper (the paper's: 3e-05)"
    assert contradiction.value.hint == "leave out --lr or --preset"


def _numeric_fields():
    """Every number a user can set, in every stage's config: (config, field, kind)."""
    from livecli.config import EvalConfig, InvertConfig
    from livecli.fields import field_types

    required = {PrepareConfig: {"prompt": "a car", "object": "car"}, EditConfig: {"replace": ("car=<tok>",)}}
    for config in (PrepareConfig, TrainConfig, InvertConfig, EditConfig, EvalConfig):
        for name, kind in field_types(config).items():
            accepted = {int, float} & set(getattr(kind, "__args__", (kind,)))
            if accepted:
                yield pytest.param(config, required.get(config, {}), name, accepted, id=f"{config.__name__}.{name}")


@pytest.mark.parametrize("config, required, name, kinds", list(_numeric_fields()))
def test_no_number_setting_takes_inf_nan_or_a_whole_number_past_64_bits(config, required, name, kinds):
    """Refused in one line naming the flag: by the field's own range where it has one,
    else by the one check every config runs (`check_fields`)."""
    bad = [float("inf"), float("-inf"), float("nan")] if float in kinds else []
    bad += [2**64, -(2**70)] if int in kinds else []
    for value in bad:
        with pytest.raises(SettingError) as error:
            config(**required, **{name: value})
        flag = "--" + name.replace("_", "-") if name != "text_weight" else "--lambda"
        assert error.value.message.startswith(flag + " "), error.value.message
        assert "Traceback" not in error.value.message and "\n" not in error.value.message


def test_learning_rates_are_positive_and_at_most_one():
    assert TrainConfig(lr=1.0, lp_lr=1e-4).lp_lr == 1e-4
    for name in ("lr", "ti_lr", "lp_lr"):
        for value, problem in ((0.0, "must be a positive number"), (1e12, "must be at most 1"), (1e38, "at most 1")):
            with pytest.raises(SettingError, match=problem):
                TrainConfig(**{name: value})


def test_a_value_given_against_the_preset_is_refused_even_at_the_default():
    from livecli.fields import from_table

    for config, table, message in [
        (TrainConfig, {"window": 4}, "--window 4 contradicts --preset paper (the paper's: 8)"),
        (EditConfig, {"replace": ["a=b"], "blend_scale": "range"}, "--blend-scale range contradicts --preset paper"),
    ]:
        with pytest.raises(SettingError) as error:
            from_table(config, {**table, "preset": "paper"})
        assert error.value.message.startswith(message)
    # a switch left off is no value given; the paper's own values are welcome
    edit = from_table(EditConfig, {"replace": ["a=b"], "no_blend": False, "guidance": 12.5, "preset": "paper"})
    assert edit.blend_scale == "max" and from_table(TrainConfig, {"steps": 500, "preset": "paper"}).steps == 500
