"""Before its lifespan opens it, the runtime says which part a caller asked for too early."""

from __future__ import annotations

from pathlib import Path

import pytest

from addon_core.clockify.manifest import load_manifest
from addon_core.runtime import AddonRuntime, build_runtime
from universal_webhook.app import UniversalWebhookSettings


@pytest.fixture
def runtime(public_key_file: Path, encryption_key: str, tmp_path: Path) -> AddonRuntime:
    settings = UniversalWebhookSettings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'never-opened.db'}",
        clockify_public_key_file=public_key_file,
        encryption_keys=(encryption_key,),
        base_url="https://addons.example.com/uw",
        data_dir=tmp_path / "data",
    )
    return build_runtime(settings, load_manifest("universal-webhook"))


@pytest.mark.parametrize(
    ("part", "named"),
    [
        ("engine", "the database engine"),
        ("sessions", "the database session factory"),
        ("clockify", "the Clockify client"),
        ("jobs", "the job queue"),
        ("intake", "the webhook intake writer"),
        ("outbound", "the outbound http client"),
    ],
)
def test_a_part_read_before_the_lifespan_names_what_is_missing(
    runtime: AddonRuntime, part: str, named: str
) -> None:
    with pytest.raises(RuntimeError, match=f"^{named} is not open yet: .*lifespan"):
        getattr(runtime, part)


def test_building_the_runtime_creates_no_database(runtime: AddonRuntime, tmp_path: Path) -> None:
    assert runtime.addon_key
    assert not (tmp_path / "never-opened.db").exists()
