"""``qualitywatch``: one command with a sub-command per task.

Sub-commands live in their own modules (``qualitywatch/cmd_<name>.py``, each exposing ``command``)
and are imported only when used, so ``qualitywatch --help`` stays fast and a broken optional part
does not take the others down.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from . import __version__

__all__ = ["main"]

#: sub-command -> module that defines ``command``
COMMANDS: dict[str, str] = {
    "schemas": "qualitywatch.cmd_schemas",
    "simulate": "qualitywatch.cmd_simulate",
    "replay": "qualitywatch.cmd_replay",
    "evaluate": "qualitywatch.cmd_evaluate",
    "broker": "qualitywatch.cmd_broker",
    "push": "qualitywatch.cmd_push",
    "worker": "qualitywatch.cmd_worker",
    "up": "qualitywatch.cmd_up",
    "serve": "qualitywatch.cmd_serve",
    "alerts": "qualitywatch.cmd_alerts",
    "import": "qualitywatch.cmd_import",
    "migrate": "qualitywatch.cmd_migrate",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise
        cmd: click.Command = mod.command
        return cmd


def _available(name: str) -> bool:
    return importlib.util.find_spec(COMMANDS[name]) is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qualitywatch")
def main() -> None:
    """QualityWatch: quality-safety risk monitoring and early warning."""
