"""The access log file: JSON lines appended in batches, 0600, rotated by size with a bounded number of old files."""

from __future__ import annotations

import json
import stat

from ollama_ops.gateway.accesslog import AccessLog, log_paths


def test_batches_are_json_lines_in_a_private_file(tmp_path):
    path = tmp_path / "logs" / "gateway.log"
    log = AccessLog(path)
    log.write([{"request_id": "a", "status": 200}, '{"request_id":"b","status":429}'])
    log.write({"request_id": "c", "model": "m\nx"})
    log.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["a", "b", "c"]
    assert json.loads(lines[2])["model"] == "m\nx"  # a newline in a value cannot forge a line
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotates_by_size_keeping_the_newest_old_files(tmp_path):
    path = tmp_path / "gateway.log"
    log = AccessLog(path, max_bytes=100, backups=2)
    for n in range(12):
        log.write({"n": n, "pad": "x" * 30})  # ~40 bytes a line: two lines a file
    log.close()
    files = [path, path.with_name("gateway.log.1"), path.with_name("gateway.log.2")]
    assert all(f.exists() for f in files) and not path.with_name("gateway.log.3").exists()
    numbers = [[json.loads(line)["n"] for line in f.read_text().splitlines()] for f in files]
    assert numbers == [[10, 11], [8, 9], [6, 7]]
    assert all(f.stat().st_size <= 100 for f in files)


def test_reopens_an_existing_file_and_counts_its_size(tmp_path):
    path = tmp_path / "gateway.log"
    path.write_text('{"n": -1}\n' * 9)  # 90 bytes already there
    log = AccessLog(path, max_bytes=100, backups=1)
    log.write({"n": 0, "pad": "y" * 20})
    log.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0]
    assert path.with_name("gateway.log.1").read_text().count("\n") == 9


def test_log_paths_lists_the_current_file_first(tmp_path, monkeypatch):
    monkeypatch.setenv("SOLLAMA_HOME", str(tmp_path))
    log = AccessLog(max_bytes=60, backups=3)
    for n in range(6):
        log.write({"n": n, "pad": "z" * 25})
    log.close()
    names = [p.name for p in log_paths()]
    assert names[0] == "gateway.log" and names[1:] == sorted(names[1:], key=lambda n: int(n.rsplit(".", 1)[1]))
