"""The house rules: each default lives once (in its config field), text becomes a config
through one typed path, and imports only go down the floors of docs/architecture.md."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import typer

import livecli
from livecli.cli import app
from livecli.config import (
    EditConfig,
    EvalConfig,
    ModelConfig,
    PrepareConfig,
    TrainConfig,
    user_defaults,
)
from livecli.errors import ConfigError
from livecli.fields import default_of, from_table, help_for
from livecli.stages import STAGES


def fields_of(config: type) -> list[str]:
    return [item.name for item in dataclasses.fields(config)]


# --------------------------------------------------------------------------- each default once

# Which configs each command's options set, and the options named otherwise than their
# field: a stage's command sets its config (the catalogue's) and the model's; what more a
# command takes is said here.
MORE_CONFIGS = {"train": (PrepareConfig,)}
RENAMED = {"prepare": {"object": "object"}, "train": {"object": "object", "compile": "compile"}}
RENAMED |= {"invert": {"compile": "compile"}, "edit": {"compile": "compile"}}
COMMAND_CONFIGS = {
    **{
        stage.name: ((stage.config, *MORE_CONFIGS.get(stage.name, ()), ModelConfig), RENAMED.get(stage.name, {}))
        for stage in STAGES
        if stage.config is not None
    },
    "run": (
        (PrepareConfig, TrainConfig, EditConfig, EvalConfig, ModelConfig),
        {
            "object": "object",
            "train_steps": (TrainConfig, "steps"),
            "edit_steps": (EditConfig, "steps"),
            "edit_seed": (EditConfig, "seed"),
            "compile": "compile",
        },
    ),
}
NOT_CONFIG = {
    "project", "force", "as_json", "no_eval", "edit_name", "every", "reference", "reference_mask", "mask",
    "gallery_dir",
}  # fmt: skip
"""Options of the commands themselves, not settings: `--reference`, `--reference-mask` and `--mask` are inputs."""


def _field_of(parameter: str, configs: tuple[type, ...], renamed: dict) -> tuple[type, str]:
    target = renamed.get(parameter, parameter)
    if isinstance(target, tuple):
        return target
    owner = next((config for config in configs if target in fields_of(config)), None)
    assert owner is not None, f"option {parameter} sets no field of {[c.__name__ for c in configs]}"
    return owner, target


@pytest.mark.parametrize("command", sorted(COMMAND_CONFIGS))
def test_every_config_option_has_its_fields_default_and_help(command):
    configs, renamed = COMMAND_CONFIGS[command]
    group = typer.main.get_command(app)
    options = [p for p in group.commands[command].params if p.param_type_name == "option" and p.name not in NOT_CONFIG]
    assert options, command
    checked = set()
    for option in options:
        config, name = _field_of(option.name, configs, renamed)
        default = default_of(config, name)
        # None: the option is left out unless given, and the config (or the project) decides.
        assert option.default is None or option.default == default or (option.default in ((), []) and default == ()), (
            option.name
        )
        assert option.help.startswith(help_for(config, name)), option.name
        if default is not None and not isinstance(default, bool):
            assert option.help.endswith(f"\\[default: {default}]"), option.name
        checked.add((config, name))
    assert len(checked) == len(options)  # no two options set one field


def test_run_covers_every_field_of_the_stages_it_runs():
    group = typer.main.get_command(app)
    configs, renamed = COMMAND_CONFIGS["run"]
    covered = {
        _field_of(p.name, configs, renamed)
        for p in group.commands["run"].params
        if p.name not in NOT_CONFIG | {"clip", "images"}
    }
    covered.add((EditConfig, "window"))  # `live run --window` is the training's, which the edit follows
    covered.add((EditConfig, "preset"))  # `live run --preset` is both stages'
    covered.add((TrainConfig, "reference_mask"))  # `--reference-mask auto` or `none`, beside its mask files
    for config in configs:
        for name in fields_of(config):
            assert (config, name) in covered, f"live run has no option for {config.__name__}.{name}"


# --------------------------------------------------------------------------- one typed path


def test_from_table_types_values_and_names_what_is_wrong():
    config = from_table(TrainConfig, {"steps": 20, "lr": 1})
    assert config.lr == 1.0 and isinstance(config.lr, float)  # `lr = 1` is the same setting as `lr = 1.0`
    assert from_table(EditConfig, {"replace": ["car=<tok>"]}).replace == ("car=<tok>",)

    with pytest.raises(ConfigError) as wrong_type:
        from_table(TrainConfig, {"seed": "20"}, section="train")
    assert wrong_type.value.message == "`train.seed` has the wrong type ('20')"
    assert wrong_type.value.hint == "it is a whole number"
    assert (
        from_table(TrainConfig, {"steps": "auto"}).steps == "auto" == from_table(TrainConfig, {"steps": "AUTO"}).steps
    )
    assert from_table(TrainConfig, {"steps": 20}).steps == 20

    with pytest.raises(ConfigError) as whole:
        from_table(PrepareConfig, {"prompt": "a car", "object": "car", "size": 64.5})
    assert "`size`" in whole.value.message

    with pytest.raises(ConfigError) as unknown:
        from_table(EditConfig, {"replace": ["a=b"], "gudiance": 5.0}, section="edit")
    assert unknown.value.message == "`edit` has no setting `gudiance`"
    assert "guidance" in unknown.value.hint

    with pytest.raises(ConfigError) as flag:
        from_table(TrainConfig, {"text_weight": True})  # a bool is not a number here
    assert "text_weight" in flag.value.message


def test_user_config_goes_through_the_same_path(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVE_CONFIG_DIR", str(tmp_path))
    path = tmp_path / "config.toml"
    path.write_text('model = "tiny"\ndevice = "cpu"\n')
    assert user_defaults() == {"model": "tiny", "device": "cpu"}

    path.write_text("device = 1\n")
    with pytest.raises(ConfigError) as wrong:
        user_defaults()
    assert wrong.value.message == f"{path}: `device` has the wrong type (1)"

    path.write_text("steps = 10\n")
    with pytest.raises(ConfigError) as unknown:
        user_defaults()
    assert unknown.value.message == f"{path}: there is no setting `steps`"


# --------------------------------------------------------------------------- imports only go down

PACKAGE = Path(livecli.__file__).parent

# docs/architecture.md's floors, lowest first; a module may import its own floor or those below.
LAYERS = [
    {
        "errors",
        "environment",
        "progress",
        "interrupt",
        "words",
        "fields",
        "config",
        "store",
        "tensor_files",
        "resources",
        "video",
        "ddim",
        "metrics",
        "scores",
        "contact_sheet",
        "references",
        "flow",
        "masks",
    },
    {"models", "control", "objectives", "augment", "stopping", "sampling", "windows", "shapes", "find_object"},
    {"stages"},
    {"cli", "options", "render", "pipeline", "batch", "slurm", "demo", "gallery", "ui", "__main__"},
]


def _layer(module: str) -> int:
    """The layer of `livecli.X…` (by its first part under livecli)."""
    top = module.split(".")[1] if "." in module else "__init__"
    if top == "__init__":
        return 0
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it where docs/architecture.md puts it")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name).is_dir()


def _imports(source: str, module: str) -> list[str]:
    """Every livecli (or bench) module that `module`'s source imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: against the package `module` is in
                base = ".".join([*module.split(".")[: -node.level], *filter(None, [base])])
            found.append(base)
            if base == "livecli":  # `from livecli import batch` imports a module
                found += [f"livecli.{alias.name}" for alias in node.names if _is_module(alias.name)]
    return [name for name in found if name.split(".")[0] in ("livecli", "bench")]


def _upward_imports(source: str, module: str) -> list[str]:
    upward = []
    for imported in _imports(source, module):
        if imported.startswith("bench"):
            upward.append(f"{module} imports {imported} (development tooling is not in the wheel)")
        elif imported != "livecli" and _layer(imported) > _layer(module):
            upward.append(f"{module} imports {imported}")
    return upward


def test_imports_only_go_down():
    upward = [
        line for path in sorted(PACKAGE.rglob("*.py")) for line in _upward_imports(path.read_text(), _module_name(path))
    ]
    assert not upward, "\n".join(upward)


def test_the_layer_check_sees_lazy_relative_and_tooling_imports():
    lazy = "def load():\n    from livecli.stages import train\n"
    assert _upward_imports(lazy, "livecli.models.trained") == ["livecli.models.trained imports livecli.stages"]
    relative = "from ..stages.train import trained_files\n"
    assert _upward_imports(relative, "livecli.models.trained") == [
        "livecli.models.trained imports livecli.stages.train"
    ]
    package = "from livecli import pipeline\n"
    assert _upward_imports(package, "livecli.stages.edit") == ["livecli.stages.edit imports livecli.pipeline"]
    assert _upward_imports("import bench.shapes\n", "livecli.demo")[0].startswith("livecli.demo imports bench.shapes")
    assert (
        _upward_imports(
            "from livecli.models import text\nfrom livecli.words import prompt_words\n", "livecli.stages.train"
        )
        == []
    )


def test_the_package_holds_no_development_scripts():
    """What the wheel ships is what `live` runs: a module with its own command line
    (argparse, a `__main__` block) is tooling, and belongs in bench/."""
    scripts = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py" or path == PACKAGE / "cli.py":
            continue
        tree = ast.parse(path.read_text())
        imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        main_block = any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)
        if "argparse" in imports or main_block:
            scripts.append(_module_name(path))
    assert not scripts, f"development scripts in the package: {scripts}"


def test_the_demo_keeps_its_own_settings():
    from livecli import demo

    group = typer.main.get_command(app)
    steps = next(p for p in group.commands["demo"].params if p.name == "train_steps")
    # None: the demo's own count, or the preset's
    assert steps.default is None and f"\\[default: {demo.TRAIN_STEPS};" in steps.help
    paper = demo.demo_job(Path("out"), Path("clip"), Path("ref.png"), preset="paper")
    assert paper.train.steps == 500 and paper.train.init_word is None and paper.edit.guidance == 12.5
    assert demo.demo_job(Path("out"), Path("clip"), Path("ref.png")).train.steps == demo.TRAIN_STEPS


def test_the_reliability_page_names_tests_that_exist():
    """docs/reliability.md says which tests check each promise: each must be there."""
    import re

    root = Path(__file__).parent.parent
    page = (root / "docs" / "reliability.md").read_text()
    named = re.findall(r"`tests/((?:cluster/)?test_\w+\.py)::(\w+)`", page)
    assert len(named) >= 15
    for module, test in named:
        assert f"def {test}(" in (root / "tests" / module).read_text(), f"{module}::{test}"
