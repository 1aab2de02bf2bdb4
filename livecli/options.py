"""A command's options, made from the config fields it sets (as litgpt makes its CLI from its dataclasses).

A command names the configs whose fields it takes as options (`Section`s) and stands a
`given: Given` parameter where they go in its signature; `@options(...)` puts an option
there for each field — its flag, type, default, help text, panel and metavar all come
from the field (fields.py) — and hands the command what was given:

    @app.command()
    @options(Section(EditConfig), Section(ModelConfig))
    def edit(*, project: ProjectOpt = None, given: Given, force: ForceOpt = False) -> None:
        config = given.config(EditConfig)

A field's option is left out (None, or False for a switch) unless given, so the config
(or the project, or a preset) decides its value. A command's required options come
first, then its own and the configs' in the order written. Two sections that give a
field the same flag share one option (`live run --preset` sets the training's and the
edit's). The errors of `Given.config` name the command's flags: `live run` says
`--train-steps` where `live train` says `--steps`.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from rich.markup import escape

from livecli.fields import (
    CHOICES,
    MAIN,
    SettingError,
    Words,
    choices_of,
    field_types,
    flag_of,
    flags,
    from_table,
    panel_of,
    required,
)

KEYWORD = inspect.Parameter.KEYWORD_ONLY


@dataclass(frozen=True)
class Section:
    """The options one config gives a command."""

    config: type
    only: tuple[str, ...] = ()
    """Just these fields (default: every field but those in `skip`)."""
    skip: tuple[str, ...] = ()
    flags: Mapping[str, str] = field(default_factory=dict)
    """A field's flag where the command names it otherwise: {"steps": "--train-steps"}."""
    panel: str | None = None
    """Every option in this `--help` panel (default: each field's own)."""
    optional: bool = False
    """The config's required fields are optional here: the command builds the config only
    when they are given (`live train` prepares only with CLIP IMAGE)."""

    def fields(self) -> list[Field]:
        return [
            item
            for item in fields(self.config)
            if (item.name in self.only or not self.only) and item.name not in self.skip
        ]

    def flag(self, name: str) -> str:
        return self.flags.get(name) or flag_of(name)

    def parameter(self, name: str) -> str:
        """The command's parameter for a field: its name, or its flag's where renamed (`train_steps`)."""
        return self.flags[name].lstrip("-").replace("-", "_") if name in self.flags else name


class Given:
    """The config options a command was given, by field; builds the configs."""

    def __init__(self, sections: tuple[Section, ...], values: Mapping[str, Any]):
        self.sections = sections
        self.values_by_parameter = values

    def values(self, config: type) -> dict[str, Any]:
        """The fields of `config` that were given (an option left out is None)."""
        given = {}
        for section in self.sections:
            if section.config is config:
                for item in section.fields():
                    value = self.values_by_parameter.get(section.parameter(item.name))
                    if value is not None:
                        given[item.name] = value
        return given

    def config(self, config: type, **more: Any) -> Any:
        """`config` from what was given and `more`, through the one typed path; its errors
        name this command's flags."""
        try:
            return from_table(config, {**self.values(config), **more})
        except SettingError as exc:
            raise exc.worded(self.words) from None

    @property
    def words(self) -> Words:
        return flags_of(*self.sections)


def flags_of(*sections: Section) -> Words:
    """Fields named as the flags of a command that takes `sections`."""
    return flags({(s.config, name): flag for s in sections for name, flag in s.flags.items()})


def options(*sections: Section) -> Callable[[Callable], Callable]:
    """Give the decorated command an option for each field of `sections`, where its `given`
    parameter stands, and call it with `given=Given(...)`."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        made: dict[str, inspect.Parameter] = {}
        for section in sections:
            kinds = field_types(section.config)
            for item in section.fields():
                name = section.parameter(item.name)
                if name not in made:  # a flag two sections share is one option
                    made[name] = _parameter(section, item, kinds[item.name], name)
        first = [p for p in made.values() if p.default is inspect.Parameter.empty]
        rest = [p for p in made.values() if p.default is not inspect.Parameter.empty]
        own = list(signature.parameters.values())
        marker = next(i for i, p in enumerate(own) if p.name == "given")
        positional = [p for p in own[:marker] if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keywords = [p for p in own[:marker] if p.kind is inspect.Parameter.KEYWORD_ONLY]
        parameters = [*positional, *first, *keywords, *rest, *own[marker + 1 :]]

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            given = {name: values.pop(name) for name in made}
            return command(**values, given=Given(sections, given))

        run.__signature__ = signature.replace(parameters=parameters)
        run.__annotations__ = {}  # the signature says it all; nothing for typing to resolve
        return run

    return decorate


def _parameter(section: Section, item: Field, kind: Any, name: str) -> inspect.Parameter:
    """The typer option of one field."""
    optional = section.optional or not required(item)
    default = item.default if not required(item) else None
    shown = "" if default is None or isinstance(default, bool) else escape(f" [default: {default}]")
    panel = section.panel or panel_of(section.config, item)
    choices = choices_of(kind)
    option = typer.Option(
        section.flag(item.name),
        help=item.metadata["help"] + shown,
        rich_help_panel=panel if panel != MAIN else None,
        show_default=False,
        metavar="|".join(choices) if item.metadata.get("metavar") == CHOICES else item.metadata.get("metavar"),
    )
    typed = _cli_type(kind)
    if typed is bool:
        return inspect.Parameter(name, KEYWORD, annotation=Annotated[bool, option], default=False)
    if not optional:
        return inspect.Parameter(name, KEYWORD, annotation=Annotated[typed, option])
    return inspect.Parameter(name, KEYWORD, annotation=Annotated[typed | None, option], default=None)


def _cli_type(kind: Any) -> Any:
    """What typer parses a field's value as: choices and mixed types as text (the typed
    reader checks them, with the messages of the configs), a tuple as a repeatable option."""
    if choices_of(kind):
        return str
    if get_origin(kind) in (Union, types.UnionType):
        members = [member for member in get_args(kind) if member is not type(None)]
        if any(get_origin(member) is tuple for member in members):
            return list[str]  # text or a list of texts: the option repeats, the config reads one as the text
        return _cli_type(members[0]) if len(members) == 1 else str
    if get_origin(kind) is tuple:
        return list[str]
    return kind
