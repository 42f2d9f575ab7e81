"""The daemon logs through ``logging`` on stderr at ``--log-level``; stdout keeps the lines a
person (or a script waiting for the socket) reads."""

from __future__ import annotations

import pytest

from service.protocol import RemoteError

from .conftest import run_main
from .test_daemon import call


def test_debug_logs_every_request_and_info_the_life_cycle(daemons):
    a = daemons("A", "full", "--log-level", "DEBUG")
    call(a.path, "ping")
    with pytest.raises(RemoteError):
        call(a.path, "map.lookup", map="nope", key=b"\0")
    code, out, err = a.stop()
    assert code == 0
    assert "offload_migrate.daemon DEBUG: A: ping" in err
    assert "A: map.lookup refused: there is no map 'nope'" in err
    assert "offload_migrate.daemon INFO: device A (profile full) serving" in err
    assert "INFO: device A stopped" in err
    assert "listening on" in out and "device A stopped" in out


def test_an_unknown_log_level_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_main(capsys, "device", "serve", "--name", "A", "--socket",
                            str(tmp_path / "a.sock"), "--log-level", "loud")
    assert code == 2 and "log-level" in err
