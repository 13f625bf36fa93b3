"""The settings loader: defaults, the env prefix, and one-line errors naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from addon_core.clockify.shipped_data import CATALOGUE_FILE, SHIPPED_DIR
from addon_core.errors import ConfigError
from addon_core.settings import AddonSettings, load_settings
from api_studio.app import ApiStudioSettings
from universal_webhook.app import UniversalWebhookSettings

APPS = [
    pytest.param(ApiStudioSettings, "API_STUDIO_", 8100, id="api-studio"),
    pytest.param(UniversalWebhookSettings, "UNIVERSAL_WEBHOOK_", 8200, id="universal-webhook"),
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("API_STUDIO_", "UNIVERSAL_WEBHOOK_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("settings_class", "prefix", "port"), APPS)
def test_defaults_follow_the_app(
    settings_class: type[AddonSettings], prefix: str, port: int
) -> None:
    settings = load_settings(settings_class)

    assert settings.addon_key == settings_class.app_name
    assert settings.port == port
    assert settings.base_url == f"http://localhost:{port}"
    assert settings.database_url == f"sqlite+aiosqlite:///var/{settings_class.app_name}.db"
    assert settings.clockify_api_allowed_hosts == ("*.clockify.me",)
    assert settings.environment == "development"
    assert settings.env_name("database_url") == f"{prefix}DATABASE_URL"


@pytest.mark.parametrize(("settings_class", "prefix", "port"), APPS)
def test_default_database_lives_under_data_dir(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    settings_class: type[AddonSettings],
    prefix: str,
    port: int,
) -> None:
    monkeypatch.setenv(f"{prefix}DATA_DIR", str(tmp_path))

    settings = load_settings(settings_class)

    expected = (tmp_path / f"{settings_class.app_name}.db").as_posix()
    assert settings.database_url == f"sqlite+aiosqlite:///{expected}"


@pytest.mark.parametrize(("settings_class", "prefix", "port"), APPS)
def test_variables_are_read_under_the_app_prefix_only(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[AddonSettings], prefix: str, port: int
) -> None:
    other = "UNIVERSAL_WEBHOOK_" if prefix == "API_STUDIO_" else "API_STUDIO_"
    monkeypatch.setenv(f"{prefix}PORT", "9000")
    monkeypatch.setenv(f"{other}ADDON_KEY", "someone-else")
    monkeypatch.setenv("PORT", "9999")

    settings = load_settings(settings_class)

    assert settings.port == 9000
    assert settings.base_url == "http://localhost:9000"
    assert settings.addon_key == settings_class.app_name


def test_explicit_base_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_STUDIO_BASE_URL", "https://addons.example.com/studio/")

    assert load_settings(ApiStudioSettings).base_url == "https://addons.example.com/studio"


def test_allowed_hosts_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "API_STUDIO_CLOCKIFY_API_ALLOWED_HOSTS", " api.clockify.me, localhost:8080 ,,*.example.com"
    )

    settings = load_settings(ApiStudioSettings)

    assert settings.clockify_api_allowed_hosts == (
        "api.clockify.me",
        "localhost:8080",
        "*.example.com",
    )


def test_encryption_keys_are_comma_separated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS", "first-key,second-key")

    settings = load_settings(UniversalWebhookSettings)

    assert [k.get_secret_value() for k in settings.encryption_keys] == ["first-key", "second-key"]
    assert "first-key" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TOKEN_LEEWAY_SECONDS", "90"),
        ("JOB_WORKER_TIMEOUT_SECONDS", "5"),
        ("DATABASE_URL", "mysql://x"),
        ("BASE_URL", "ftp://x"),
        ("LOG_FORMAT", "xml"),
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("ENVIRONMENT", "staging"),
        ("ALLOW_INSECURE_HTTP", "perhaps"),
        ("CLOCKIFY_API_ALLOWED_HOSTS", "https://api.clockify.me"),
        ("CLOCKIFY_API_ALLOWED_HOSTS", "api.clockify.me/api"),
        ("CLOCKIFY_API_ALLOWED_HOSTS", " , "),
        ("DEDUPE_WINDOW_SECONDS", "0"),
    ],
)
@pytest.mark.parametrize(("settings_class", "prefix", "port"), APPS)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    settings_class: type[AddonSettings],
    prefix: str,
    port: int,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(f"{prefix}{variable}", value)

    with pytest.raises(ConfigError) as caught:
        load_settings(settings_class)
    detail = caught.value.detail
    assert detail.startswith(f"{prefix}{variable}: ")
    assert "\n" not in detail


def test_invalid_database_url_does_not_echo_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_STUDIO_DATABASE_URL", "mysql://addons:hunter2@db/addons")

    with pytest.raises(ConfigError) as caught:
        load_settings(ApiStudioSettings)
    assert caught.value.detail.startswith("API_STUDIO_DATABASE_URL: ")
    assert "hunter2" not in caught.value.detail


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_STUDIO_PORT", "9000")

    assert load_settings(ApiStudioSettings, port=9100).base_url == "http://localhost:9100"


def test_the_catalogue_comes_from_the_file_setting_then_a_fetched_file_then_the_package(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    shipped = load_settings(ApiStudioSettings, data_dir=data_dir).openapi_path
    assert shipped == SHIPPED_DIR / CATALOGUE_FILE
    assert shipped.is_file()

    data_dir.mkdir()
    fetched = data_dir / "clockify-openapi.json"
    fetched.write_text("{}")
    assert load_settings(ApiStudioSettings, data_dir=data_dir).openapi_path == fetched

    chosen = tmp_path / "mine.json"
    settings = load_settings(ApiStudioSettings, data_dir=data_dir, clockify_openapi_file=chosen)
    assert settings.openapi_path == chosen
    assert settings.fetched_openapi_path == fetched


def test_frame_ancestors_add_loopback_only_for_a_loopback_base_url() -> None:
    local = load_settings(ApiStudioSettings, base_url="http://127.0.0.1:8100")
    assert local.frame_ancestors == (
        "https://*.clockify.me",
        "http://127.0.0.1:*",
        "http://localhost:*",
    )
    public = load_settings(
        ApiStudioSettings,
        base_url="https://addons.example.com",
        ui_frame_ancestors="https://app.example.com, https://*.clockify.me",
    )
    assert public.frame_ancestors == ("https://app.example.com", "https://*.clockify.me")


def test_a_frame_ancestor_that_is_not_an_origin_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ApiStudioSettings, ui_frame_ancestors="https://ok.example.com, 'self' x")
    message = str(caught.value)
    assert message.startswith("API_STUDIO_UI_FRAME_ANCESTORS:")
    assert "is not an origin" in message
