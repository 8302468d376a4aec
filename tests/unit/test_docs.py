"""The guides (README.md, CONTRIBUTING.md, docs/*.md) and the commands' help cross-checked against the code.

Every ``QW_*`` variable of a settings class is listed in the guide of the part that reads it, and
every ``QW_*`` variable a guide names is one the code reads; every ``qualitywatch`` command and
``make`` target a guide shows exists, with the options it shows; a command's ``--catalogue`` says
where its default comes from.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from pydantic_settings import BaseSettings

from alerts.settings import AlertSettings
from stream.ingest import IngestSettings
from stream.settings import StreamSettings

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

#: settings class -> the guide that lists its variables
SETTINGS_GUIDE: dict[type[BaseSettings], str] = {
    StreamSettings: "docs/stream.md",
    AlertSettings: "docs/alerts.md",
    IngestSettings: "docs/ingest.md",
}
#: variables read by the tests and benchmarks, not by the platform
TEST_VARIABLES = {"QW_TEST_DATABASE_URL", "QW_BENCH_DATABASE_URL", "QW_UPDATE_SCREENSHOTS"}


def variables(text: str) -> set[str]:
    """The ``QW_*`` names in ``text``; ``QW_ESCALATE_{RED,BLUE}_S`` names two, the prefix alone none."""
    found: set[str] = set()
    for m in re.finditer(r"QW_[A-Z0-9_]*(?:\{[A-Z0-9_,]+\}[A-Z0-9_]*)?", text):
        name = m.group(0)
        if "{" in name:
            head, rest = name.split("{", 1)
            choices, tail = rest.split("}", 1)
            found.update(f"{head}{choice}{tail}" for choice in choices.split(","))
        elif name != "QW_":
            found.add(name)
    return found


def test_variables_reads_a_brace_list() -> None:
    assert variables("`QW_ESCALATE_{RED,BLUE}_S` and QW_PORT (prefix `QW_`, `QW_*`).") == {
        "QW_ESCALATE_RED_S",
        "QW_ESCALATE_BLUE_S",
        "QW_PORT",
    }


@pytest.mark.parametrize("cls", list(SETTINGS_GUIDE), ids=lambda c: c.__name__)
def test_every_setting_is_listed_in_its_guide(cls: type[BaseSettings]) -> None:
    guide = SETTINGS_GUIDE[cls]
    listed = variables((ROOT / guide).read_text(encoding="utf-8"))
    missing = sorted(f"QW_{name.upper()}" for name in cls.model_fields if f"QW_{name.upper()}" not in listed)
    assert missing == [], f"{guide} does not name {missing} ({cls.__name__})"


def test_every_variable_a_guide_names_is_read() -> None:
    known = {f"QW_{name.upper()}" for cls in SETTINGS_GUIDE for name in cls.model_fields} | TEST_VARIABLES
    unknown = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in GUIDES
        for name in variables(path.read_text(encoding="utf-8"))
        if name not in known
    }
    assert sorted(unknown) == []


# --------------------------------------------------------------------------------------------------
# commands


def code(text: str) -> list[str]:
    """The code a guide shows: its inline spans and the lines of its fenced and indented blocks."""
    found = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
        found += block.splitlines()
    found += [line[4:] for line in text.splitlines() if line.startswith("    ") and line.strip()]
    return found


def shown(prefix: str) -> list[tuple[str, str]]:
    """(guide, command line) for every line of code that runs ``prefix`` (after any VAR=value)."""
    out = []
    for path in GUIDES:
        for line in code(path.read_text(encoding="utf-8")):
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)+", "", line)
            if line.startswith(prefix + " ") and re.match(r"[a-z]", line[len(prefix) + 1 :]):
                out.append((str(path.relative_to(ROOT)), line))
    return out


def check_command(line: str) -> None:
    """The sub-commands of ``line`` exist, every option it shows is one of its command's, and a line
    that shows options (one to type, not a mention of the command) shows the required ones."""
    from qualitywatch.cli import main

    words = line.replace("[", " ").replace("]", " ").split()[1:]
    cmd: click.Command = main
    path = ["qualitywatch"]
    while isinstance(cmd, click.Group) and words and not words[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd, info_name=path[-1]), words[0])
        assert sub is not None, f"{' '.join(path)} has no sub-command {words[0]!r}"
        path.append(words.pop(0))
        cmd = sub
    assert not isinstance(cmd, click.Group), f"{' '.join(path)} needs a sub-command"
    options = {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)}
    given = [w.split("=")[0] for w in words if w.startswith("-") and w != "-"]
    unknown = [w for w in given if w not in options]
    assert unknown == [], f"{' '.join(path)} has no option {unknown}"
    required = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and p.required]
    missing = [opt for opt in required if given and opt not in given]
    assert missing == [], f"{line}: {' '.join(path)} needs {missing}"


def test_check_command_refuses_what_does_not_exist() -> None:
    check_command("qualitywatch alerts token create --name li --role inspector [--county 653022]")
    with pytest.raises(AssertionError, match="no sub-command"):
        check_command("qualitywatch alerts tokens create")
    with pytest.raises(AssertionError, match="no option"):
        check_command("qualitywatch serve --workdir var")
    with pytest.raises(AssertionError, match="needs"):
        check_command("qualitywatch alerts token create --role inspector")
    check_command("qualitywatch alerts token create")  # a mention of the command, not a line to type


def test_guides_show_commands() -> None:
    assert len(shown("qualitywatch")) > 20 and len(shown("make")) > 3


@pytest.mark.parametrize(("guide", "line"), shown("qualitywatch"))
def test_every_command_a_guide_shows_exists(guide: str, line: str) -> None:
    check_command(line)


def test_every_make_target_a_guide_shows_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-zA-Z_-]+):", makefile, flags=re.M))
    unknown = [
        f"{guide}: {line}"
        for guide, line in shown("make")
        for word in line.split()[1:]
        if not word.startswith("-") and word not in targets
    ]
    assert unknown == []


def _commands() -> list[tuple[str, click.Command]]:
    from qualitywatch.cli import main

    out: list[tuple[str, click.Command]] = []

    def walk(cmd: click.Command, path: str) -> None:
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd, info_name=path)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}")

    walk(main, "qualitywatch")
    return out


def test_every_catalogue_option_names_its_default() -> None:
    """``--catalogue`` defaults to ``QW_CATALOGUE_PATH`` wherever it is offered; its help says so."""
    offered = {path: p for path, cmd in _commands() for p in cmd.params if "--catalogue" in p.opts}
    assert {"qualitywatch import", "qualitywatch replay"} <= set(offered)
    helps = {path: getattr(p, "help", None) or "" for path, p in offered.items()}
    silent = [path for path, text in helps.items() if "QW_CATALOGUE_PATH" not in text]
    assert silent == []
