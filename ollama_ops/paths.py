"""Where sollama keeps its config, state (pid file, lock, daemon logs) and data (history, transcripts).

`SOLLAMA_HOME` relocates all of them (tests always set it); otherwise the platform directories are used.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "sollama"


def _home() -> Path | None:
    home = os.environ.get("SOLLAMA_HOME")
    return Path(home).expanduser() if home else None


def config_dir() -> Path:
    home = _home()
    if home:
        return home
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP))


def state_dir(create: bool = False) -> Path:
    home = _home()
    if home:
        path = home / "state"
    else:
        from platformdirs import user_state_dir

        path = Path(user_state_dir(APP))
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def data_dir(create: bool = False) -> Path:
    home = _home()
    if home:
        path = home / "data"
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir(APP))
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def tools_dir() -> Path:
    """The cache `scripts/install-ollama.sh` builds into."""
    return Path(os.environ.get("SOLLAMA_TOOLS") or Path.home() / ".cache" / "sollama" / "tools")


def history_db() -> Path:
    return data_dir(create=True) / "history.sqlite3"
