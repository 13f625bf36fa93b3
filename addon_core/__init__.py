"""The core both add-ons share (see docs/architecture.md).

One start-up cost is settled here, before anything imports httpx: httpx imports its
command-line tool (click, rich and pygments: about 0.25 s and 6 MB) whenever rich is
installed, which Litestar requires. The add-ons never run that tool; a `None` entry makes
httpx's optional import of it fail, as it does when the tool's extras are missing.
"""

import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
