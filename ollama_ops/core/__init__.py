"""Pure cores: no I/O, no httpx/rich/psutil imports."""
