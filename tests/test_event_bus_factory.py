"""Choosing the event bus by SAPARI_EVENTS_URL (no services needed: nothing connects)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sapari_server.events.bus import LocalEventBus, make_event_bus
from sapari_server.events.redis_bus import DEFAULT_CHANNEL, RedisEventBus, split_events_url


def test_no_url_is_the_in_process_bus() -> None:
    assert isinstance(make_event_bus(""), LocalEventBus)


def test_redis_urls_make_the_redis_bus_without_connecting() -> None:
    # Port 1: nothing listens; building the bus must not try (workers and the CLI build
    # runtimes they never stream from).
    for url in ("redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/2?channel=team-a"):
        bus = make_event_bus(url)
        assert isinstance(bus, RedisEventBus)
        assert not bus.subscribed and bus.poll_interval == bus.fallback_poll
        bus.close()


def test_channel_is_ours_and_the_rest_goes_to_redis_py() -> None:
    assert split_events_url("redis://h:6379/0") == ("redis://h:6379/0", DEFAULT_CHANNEL)
    assert split_events_url("redis://:pw@h:6379/3?channel=team-a&socket_keepalive=1") == (
        "redis://:pw@h:6379/3?socket_keepalive=1", "team-a")


@pytest.mark.parametrize("url", ["kafka://broker:9092", "http://127.0.0.1:6379", "redis"])
def test_other_urls_are_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(ValueError) as e:
        make_event_bus(url)
    assert "SAPARI_EVENTS_URL" in str(e.value) and "redis://" in str(e.value)


def test_serve_refuses_a_bad_events_url_in_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "sapari_nb.cli", "serve", "--data-dir",
                        str(tmp_path)], env={"SAPARI_EVENTS_URL": "kafka://broker:9092",
                                             "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("sapari-nb serve: SAPARI_EVENTS_URL scheme 'kafka'")
    assert "Traceback" not in r.stderr
