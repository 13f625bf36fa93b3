"""Build the Clockify reference data that ships in the package, into addon_core/_data/clockify/.

Reads openapi.json, the manifest schema(s) the manifests target and clockify-public-key.pem
from $CLOCKIFY_REFERENCE_DIR (default ../shared/clockify, beside the checkout) and writes the
compact operation catalogue, the schema(s) and the key. Run it after Clockify publishes a new
document or key, and commit what it writes.

    uv run python scripts/build_package_data.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from addon_core.clockify.shipped_data import SHIPPED_DIR, build_package_data
from addon_core.settings import REFERENCE_DIR_VARIABLE, reference_dir

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a shipped file differs"
    )
    args = parser.parse_args()
    source = reference_dir() or REPO.parent / "shared" / "clockify"
    try:
        files = build_package_data(source, REPO / "manifests")
    except FileNotFoundError as exc:
        print(
            f"error: cannot read {exc.filename}: set {REFERENCE_DIR_VARIABLE} to the folder "
            "holding Clockify's openapi.json, manifest schemas and public key",
            file=sys.stderr,
        )
        return 2
    stale = [name for name, content in files.items() if _read(SHIPPED_DIR / name) != content]
    if args.check:
        for name in stale:
            print(f"{SHIPPED_DIR / name} differs from what {source} builds", file=sys.stderr)
        return 1 if stale else 0
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    for name, content in sorted(files.items()):
        (SHIPPED_DIR / name).write_bytes(content)
        print(f"{SHIPPED_DIR.relative_to(REPO) / name}: {len(content):,} bytes")
    return 0


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
