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


def _app_dir(sub: str, platform_dir: str, create: bool) -> Path:
    """`SOLLAMA_HOME/<sub>`, else the platform's user dir of that kind (e.g. user_state_dir)."""
    home = _home()
    if home:
        path = home / sub
    else:
        import platformdirs

        path = Path(getattr(platformdirs, platform_dir)(APP))
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def state_dir(create: bool = False) -> Path:
    """Pid file, lock, daemon logs, the saved memory plan."""
    return _app_dir("state", "user_state_dir", create)


def data_dir(create: bool = False) -> Path:
    """History database, chat transcripts and readline history."""
    return _app_dir("data", "user_data_dir", create)


def tools_dir() -> Path:
    """The cache `scripts/install-ollama.sh` builds into."""
    return Path(os.environ.get("SOLLAMA_TOOLS") or Path.home() / ".cache" / "sollama" / "tools")


def history_db() -> Path:
    return data_dir(create=True) / "history.sqlite3"
