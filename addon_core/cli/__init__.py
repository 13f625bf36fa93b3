"""The `clockify-addons` command line: serve, migrate, manifest, keys, openapi, sandbox, jobs.

`main` is the group (`main.py`); importing this package registers its commands
(`app_commands`, `database_commands`).
"""

from addon_core.cli import app_commands as app_commands
from addon_core.cli import database_commands as database_commands
from addon_core.cli.main import APPS as APPS
from addon_core.cli.main import describe_error as describe_error
from addon_core.cli.main import main as main
from addon_core.cli.main import variable as variable
