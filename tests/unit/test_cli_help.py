"""The command line's own table of apps, which lets `--help` import no app, matches the apps."""

from __future__ import annotations

import click
from click.testing import CliRunner

from addon_core.apps import app_names, load_spec
from addon_core.cli import APPS, describe_error, main, variable
from addon_core.errors import ConflictError


def test_the_cli_table_of_apps_matches_each_registered_apps_settings() -> None:
    assert app_names() == ["api-studio", "universal-webhook"]
    assert {
        name: (
            str(spec.settings_class.model_config.get("env_prefix")),
            spec.settings_class.default_port,
        )
        for name, spec in ((name, load_spec(name)) for name in app_names())
    } == APPS


def test_help_names_the_variable_of_both_apps() -> None:
    assert variable("PORT") == "API_STUDIO_PORT / UNIVERSAL_WEBHOOK_PORT"


def test_an_unexpected_error_is_one_line_with_secrets_masked() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
    described = describe_error(RuntimeError(f"boom with {token}\nsecond line"))
    assert described.startswith("RuntimeError: boom with ")
    assert token not in described
    assert "\n" not in described
    assert describe_error(ConflictError("already installed")) == "already installed"
    assert describe_error(PermissionError(13, "Permission denied", "/srv/x")) == (
        "Permission denied: /srv/x"
    )


def test_an_error_no_command_handles_is_one_line_unless_traceback_is_asked_for() -> None:
    @click.command("explode")
    def explode() -> None:
        raise RuntimeError("the disk caught fire")

    main.add_command(explode)
    try:
        runner = CliRunner()
        short = runner.invoke(main, ["explode"])
        detailed = runner.invoke(main, ["--traceback", "explode"])
    finally:
        main.commands.pop("explode")

    assert short.exit_code == 1
    assert short.output == (
        "error: RuntimeError: the disk caught fire (run again with --traceback for the details)\n"
    )
    assert detailed.exit_code == 1
    assert isinstance(detailed.exception, RuntimeError)
