"""The `clockify-addons` group and what every command shares: the apps' table, settings, errors.

An error reaches the operator as one line (`--traceback` shows the rest); the commands
themselves are in `app_commands` and `database_commands`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from addon_core.settings import AddonSettings

#: APP → (environment prefix, default port); kept here so `--help` imports no app
#: (tests/unit/test_cli_help.py checks it against the apps' settings classes).
APPS: dict[str, tuple[str, int]] = {
    "api-studio": ("API_STUDIO_", 8100),
    "universal-webhook": ("UNIVERSAL_WEBHOOK_", 8200),
}
APP = click.argument("app", type=click.Choice(list(APPS)), metavar="APP")


def variable(field: str) -> str:
    """Name a setting's variable for both apps, for help text."""
    return " / ".join(f"{prefix}{field}" for prefix, _ in APPS.values())


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one error line and exit with code (2: a usage or configuration error)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def app_settings(app: str, **overrides: Any) -> AddonSettings:
    """Load APP's settings from the environment, or fail naming the variable at fault."""
    from addon_core.apps import load_spec
    from addon_core.errors import ConfigError
    from addon_core.settings import load_settings

    try:
        return load_settings(load_spec(app).settings_class, **overrides)
    except ConfigError as exc:
        fail(exc.detail)


class _OneLineErrors(click.Group):
    """Report what went wrong in one line, never a traceback (`--traceback` shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if ctx.params.get("traceback"):
                raise
            fail(describe_error(exc), code=1)


def describe_error(exc: BaseException) -> str:
    """Say in one line, with secrets masked, what an unexpected error was."""
    from addon_core.errors import AddonError
    from addon_core.redaction import redact_text

    if isinstance(exc, AddonError):
        return exc.detail
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    first = (redact_text(str(exc)).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first} (run again with --traceback for the details)"


@click.group(
    cls=_OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Run and operate the Clockify add-ons API Studio and Universal Webhook.\n\n"
    "APP is `api-studio` or `universal-webhook`. Configuration comes from the environment "
    "(API_STUDIO_* or UNIVERSAL_WEBHOOK_*); see docs/configuration.md.",
)
@click.version_option(package_name="clockify-addons", prog_name="clockify-addons")
@click.option("--traceback", is_flag=True, hidden=True, help="Show the traceback of an error.")
def main(traceback: bool) -> None:
    """The `clockify-addons` group; its help text is the `help` argument above."""
