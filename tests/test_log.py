from __future__ import annotations

import json
import logging
import sys

from server.log import JsonFormatter, request_id_var


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("server.test", logging.INFO, __file__, 1, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_the_request_id_and_extras() -> None:
    token = request_id_var.set("req-9")
    try:
        line = JsonFormatter().format(_record("hello %s", category="trading"))
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert entry["msg"] == "hello %s"
    assert entry["request_id"] == "req-9"
    assert entry["category"] == "trading"
    assert entry["level"] == "INFO"
    assert entry["ts"].endswith("+00:00")


def test_exceptions_are_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]
