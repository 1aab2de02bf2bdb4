"""What a config field says of itself, the one typed reader, and errors that name fields.

A stage's settings are a frozen dataclass (config.py); each field says once what the
command line, a jobs file and the records need of it, in its `setting(...)` metadata: its
help text, where `--help` shows it, whether `--preset paper` pins it, whether it changes
what the stage makes. Choices are `Literal` types.

Text from outside — a command's options, a jobs file's stage tables, the user's
`config.toml` — becomes a config through one typed path: `from_table` types each value
(`typed`) and the config's `__post_init__` calls `check_fields`, which checks choices.

A `SettingError` names fields as `{field}` in its message and hint, so that each front end
puts them in its own words: by default (and on the command line) as flags, `--steps`;
in a jobs file as keys, `train.steps`. `{field:500}` is the field given a value
(`--steps 500`), `{field.default}` its default.
"""

from __future__ import annotations

import functools
import math
import string
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from livecli.errors import ConfigError

# --------------------------------------------------------------------------- a field's metadata

MAIN = ""
"""The panel of `--help` that holds a command's own options (Typer's "Options")."""
CHOICES = "|"
"""A metavar that shows a field's choices: `sample|inversion`."""


@dataclass(frozen=True)
class Within:
    """A number field's range, which the one typed reader checks (`check_fields`): from
    `low` (excluded where `low_open`) to `high`, each optional; the error says the bound in
    words ("must be 0 or more", "must be at least 1", "must be positive", "must be at most
    1") and why where `why_high` says (after the value), with `hint`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    hint: str = ""
    low_words: str = ""
    """The low bound in words, where the default ones would not do ("a positive number")."""
    why_high: str = ""
    words: str = ""
    """The whole range in words, said whichever bound is broken ("between 0 and 1")."""

    def problem(self, value: float) -> tuple[str, str] | None:
        """The bound `value` breaks, in words ("must be …"), and what to say after the value
        (`why_high`, for the high bound); None within."""
        low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        high = self.high is not None and value > self.high
        if self.words and (low or high):
            return f"must be {self.words}", ""
        if low:
            if self.low_words:
                return f"must be {self.low_words}", ""
            if self.low_open:
                return ("must be positive" if self.low == 0 else f"must be more than {self.low:g}"), ""
            return ("must be 0 or more" if self.low == 0 else f"must be at least {self.low:g}"), ""
        if high:
            return f"must be at most {self.high:g}", self.why_high
        return None


def setting(
    help: str,
    *,
    panel: str | None = None,
    metavar: str | None = None,
    choice_hint: str | None = None,
    paper: bool = False,
    inert: bool = False,
    omit_default: bool = False,
    within: Within | None = None,
) -> dict[str, Any]:
    """A config field's metadata.

    - `help`: its `--help` text (the default is added to it where there is one);
    - `panel`: the `--help` panel of its option (default: its config's `PANEL`; `MAIN` for
      the command's own);
    - `metavar`: what `--help` shows for its value (default: its type; `CHOICES`: its choices);
    - `choice_hint`: the hint of an error for a value not among its choices (default:
      the first choice that is not the default, or leaving it out);
    - `paper`: part of the paper's method: `--preset paper` sets it to the paper's value
      (the config's `PAPER` where it differs from the default) and refuses another;
    - `inert`: it does not change what the stage makes, so its records leave it out;
    - `omit_default`: at its default, records leave it out (a field added after the first
      projects were made: so that those projects stay up to date);
    - `within`: its range (`Within`), checked by the typed reader with the other checks.
    """
    values = {"help": help, "panel": panel, "metavar": metavar, "choice_hint": choice_hint, "within": within}
    return {key: value for key, value in values.items() if value is not None} | {
        "paper": paper,
        "inert": inert,
        "omit_default": omit_default,
    }


def config_field(config: type, name: str) -> Field:
    """The dataclass field `name` of `config`."""
    for item in fields(config):
        if item.name == name:
            return item
    raise KeyError(name)


def help_for(config: type, name: str) -> str:
    """The `--help` text of a config field."""
    return config_field(config, name).metadata["help"]


def default_of(config: type, name: str) -> Any:
    """A field's default; None for a field without one (a required flag)."""
    default = config_field(config, name).default
    return None if default is MISSING else default


def required(item: Field) -> bool:
    return item.default is MISSING and item.default_factory is MISSING


def panel_of(config: type, item: Field) -> str:
    """The `--help` panel of a field's option: its own, else its config's."""
    return item.metadata.get("panel", getattr(config, "PANEL", MAIN))


@functools.cache
def field_types(config: type) -> dict[str, Any]:
    """Each field's type, resolved from its annotation (a string under `from __future__ import annotations`)."""
    hints = get_type_hints(config)
    return {item.name: hints[item.name] for item in fields(config)}


def choices_of(kind: Any) -> tuple[str, ...]:
    """The values of a `Literal` type (also inside `X | None`); () for any other type."""
    if get_origin(kind) is Literal:
        return get_args(kind)
    if get_origin(kind) in (Union, types.UnionType):
        return next((choices_of(member) for member in get_args(kind) if choices_of(member)), ())
    return ()


# --------------------------------------------------------------------------- errors that name fields

Words = Callable[[type, str, "str | None"], str]
"""How a front end names the field `name` of a config class, alone (value None) or given a
value: `flags()` on the command line (`--steps`, `--steps 500`), batch.py's keys in a jobs file."""

FLAG_NAMES = {"text_weight": "--lambda"}
"""Fields whose flag is not `--` and their name with dashes."""


def flag_of(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def flags(renamed: Mapping[tuple[type, str], str] | None = None) -> Words:
    """Fields named as flags; `renamed` gives the flags a command names otherwise
    (`live run`: TrainConfig's steps is `--train-steps`)."""

    def words(config: type, name: str, value: str | None = None) -> str:
        flag = (renamed or {}).get((config, name)) or flag_of(name)
        return flag if value is None else f"{flag} {value}"

    return words


@dataclass(frozen=True)
class _Named:
    """A field inside a SettingError's text: `{steps}`, `{steps:500}`, `{steps.default}`."""

    config: type
    name: str
    words: Words

    def __format__(self, value: str) -> str:
        return self.words(self.config, self.name, value or None)

    @property
    def default(self) -> Any:
        return default_of(self.config, self.name)


class _Text(string.Formatter):
    """Fills a template: values by their name, anything else as a field of the config."""

    def __init__(self, config: type, words: Words, values: Mapping[str, Any]):
        self.config, self.words, self.values = config, words, values

    def get_value(self, key, args, kwargs):
        if key in self.values:
            return self.values[key]
        return _Named(self.config, key, self.words)


class SettingError(ConfigError):
    """A setting of `config` has a value its stage cannot use: the message and hint are
    templates naming its fields (`{steps}`), filled in front ends' words (`worded`);
    `values` are what the text quotes, never read as fields."""

    def __init__(self, config: type, message: str, hint: str | None = None, words: Words | None = None, /, **values):
        self.config, self.template, self.values = config, (message, hint), values
        self.words = words or flags()
        text = _Text(config, self.words, values)
        super().__init__(text.format(message), hint=text.format(hint) if hint is not None else None)

    def worded(self, words: Words) -> SettingError:
        """The same error, its fields named in `words`."""
        return SettingError(self.config, *self.template, words, **self.values)


# --------------------------------------------------------------------------- the typed reader

Config = TypeVar("Config")


def describe(kind: Any) -> str:
    """A type as the hint of a wrong-type error says it."""
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(get_args(kind))
    if get_origin(kind) in (Union, types.UnionType):
        return " or ".join(describe(member) for member in get_args(kind) if member is not type(None))
    if get_origin(kind) is tuple:
        return f"a list of {describe(get_args(kind)[0]).removeprefix('a ')}s"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))


def typed(value: Any, kind: Any) -> Any:
    """`value` as a `kind` (a config field's type), or TypeError. A whole number where a
    number goes becomes a float, so `lr = 1` and `--lr 1` give one fingerprint. Any
    string is a `Literal`'s: whether it is one of the choices, `check_fields` says."""
    if get_origin(kind) in (Union, types.UnionType):
        for member in get_args(kind):
            try:
                return typed(value, member)
            except TypeError:
                pass
    elif kind is type(None):
        if value is None:
            return None
    elif get_origin(kind) is Literal:
        if isinstance(value, str):
            return value
    elif get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(typed(item, get_args(kind)[0]) for item in value)
    elif kind is bool:
        if isinstance(value, bool):
            return value
    elif kind in (int, float):
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (kind is float or isinstance(value, int))
        ):
            return kind(value)
    elif isinstance(value, kind):
        return value
    raise TypeError(f"{value!r} is not {describe(kind)}")


def typed_table(kinds: Mapping[str, Any], table: Mapping[str, Any], section: str | None = None) -> dict[str, Any]:
    """Every value of `table` as its key's type in `kinds`; an unknown key or a wrong type is
    one error naming the key, within `section` when given (a batch job's `train` table)."""
    values = {}
    for key, value in table.items():
        name = f"{section}.{key}" if section else key
        if key not in kinds:
            where = f"`{section}` has" if section else "there is"
            raise ConfigError(f"{where} no setting `{key}`", hint=f"the settings are: {', '.join(kinds)}")
        try:
            values[key] = typed(value, kinds[key])
        except TypeError:
            raise ConfigError(
                f"`{name}` has the wrong type ({value!r})", hint=f"it is {describe(kinds[key])}"
            ) from None
    return values


def from_table(config: type[Config], table: Mapping[str, Any], section: str | None = None) -> Config:
    """A stage's config from outside text: the CLI's parameters, a batch job's stage table.
    Keys are field names; values are checked against the fields' types (`typed_table`),
    then by the config's own `__post_init__`. A value given that the config's preset sets
    otherwise contradicts it, even where it is the default (`--blend-scale range --preset
    paper`): only what was given can say so."""
    values = typed_table(field_types(config), table, section)
    built = config(**values)
    if getattr(built, "preset", None) is not None:
        for name, wanted in paper_settings(config).items():
            if name in values and values[name] is not False and values[name] != wanted:  # a switch left off: not given
                raise _contradiction(config, name, values[name], built.preset, wanted)
    return built


WHOLE_NUMBER_LIMIT = 2**63 - 1
"""The largest whole number a setting takes: what torch's seeds and counts hold."""


def check_fields(config: Any) -> None:
    """The checks every config's `__post_init__` starts with: each number is finite (no
    `inf`, no `nan`) and a whole number fits in 64 bits; each choice field's value is one
    of its choices; each number within its declared range (`Within`). What a field must be
    beside the others its config checks after."""
    kinds = field_types(type(config))
    for item in fields(config):
        choices = choices_of(kinds[item.name])
        value = getattr(config, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingError(
                type(config), f"{{{item.name}:{{value}}}} is not a finite number", _number_hint(item), value=value
            )
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > WHOLE_NUMBER_LIMIT:
            raise SettingError(
                type(config),
                f"{{{item.name}}} is out of range ({{value:.3g}})",
                _number_hint(item) + " (whole numbers here stay within ±(2**63 - 1))",
                value=float(value),
            )
        within = item.metadata.get("within")
        if within is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            broken = within.problem(value)
            if broken is not None:
                bound, why = broken
                shown = "{value}" if isinstance(value, int) else "{value:g}"
                raise SettingError(type(config), f"{{{item.name}}} {bound}, got {shown}{why}", within.hint, value=value)
        if choices and value is not None and value not in choices:
            raise SettingError(
                type(config),
                f"{{{item.name}:{{value!r}}}} is not one of {{choices}}",
                item.metadata.get("choice_hint") or _choice_hint(item, choices),
                value=value,
                choices=", ".join(choices),
            )


def _number_hint(item: Field) -> str:
    if isinstance(item.default, (int, float)) and not isinstance(item.default, bool):
        return f"e.g. {{{item.name}:{{{item.name}.default}}}}, the default"
    return "give a number, or leave it out"


def _choice_hint(item: Field, choices: tuple[str, ...]) -> str:
    other = next(choice for choice in choices if choice != item.default)
    return f"{{{item.name}:{other}}}, or leave it out"


# --------------------------------------------------------------------------- what a config says of itself


def settings_of(config: Any) -> dict[str, Any]:
    """The fields that change what the stage makes, as its record keeps them: without
    `inert` ones, nor `omit_default` ones at their default."""
    values = {}
    for item in fields(config):
        value = getattr(config, item.name)
        if item.metadata.get("inert") or (item.metadata.get("omit_default") and value == item.default):
            continue
        values[item.name] = list(value) if isinstance(value, tuple) else value
    return values


def paper_settings(config: type) -> dict[str, Any]:
    """The values `--preset paper` sets: each field that is part of the paper's method, at
    the config's `PAPER` value where the paper differs from the default."""
    differing = getattr(config, "PAPER", {})
    return {item.name: differing.get(item.name, item.default) for item in fields(config) if item.metadata.get("paper")}


def apply_preset(config: Any) -> None:
    """Set the preset's values on `config` (a frozen config with a `preset` field); a value
    that is neither the field's default nor the preset's contradicts it."""
    if config.preset is None:
        return
    for name, wanted in paper_settings(type(config)).items():
        value = getattr(config, name)
        if value != wanted and value != default_of(type(config), name):
            raise _contradiction(type(config), name, value, config.preset, wanted)
        object.__setattr__(config, name, wanted)


def _contradiction(config: type, name: str, value: Any, preset: str, wanted: Any) -> SettingError:
    given = f"{{{name}}}" if isinstance(value, bool) else f"{{{name}:{{value}}}}"
    return SettingError(
        config,
        given + " contradicts {preset:{preset_value}} (the paper's: {paper})",
        f"leave out {{{name}}} or {{preset}}",
        value=value,
        preset_value=preset,
        paper="off" if wanted in (False, None) else wanted,
    )
