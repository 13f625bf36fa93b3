"""Where the data files that ship with the code live: manifests and migrations.

An installed wheel carries them under `addon_core/_data/`; a source checkout
keeps them at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).with_name("_data")
_CHECKOUT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """Return the folder `name` (`alembic` or `manifests`) wherever it was installed."""
    for base in (_PACKAGED, _CHECKOUT):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ folder is missing from the installation")
