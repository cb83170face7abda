"""A port already in use is a clear error: only one --workers group shares a port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from services import free_port

from routecore.config import load_config
from routecore.errors import AddressInUse
from routecore.server.app import App


def _app(tmp_path: Path) -> App:
    return App.from_config(load_config(None), access_log=False,
                           feedback_db=str(tmp_path / "f.db"))


async def test_second_server_on_a_used_port_is_refused(tmp_path: Path) -> None:
    """A second App on the first one's port fails with AddressInUse instead of sharing it."""
    first = _app(tmp_path)
    port = await first.start("127.0.0.1", 0)
    second = _app(tmp_path)
    try:
        with pytest.raises(AddressInUse, match=f"127.0.0.1:{port}: the address is already in use"):
            await second.start("127.0.0.1", port)
        assert second.server is None and second.completer is None and second.outcomes is None
    finally:
        await first.stop(0)


async def test_port_held_by_another_program_is_refused(tmp_path: Path) -> None:
    """A port some other program listens on (even with SO_REUSEPORT) is refused, not shared."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(AddressInUse, match="already in use"):
            await _app(tmp_path).start("127.0.0.1", port)


def _serve(port: int, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "routecore.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port), *extra], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_serving(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                res = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=0.5)
                if res.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.1)  # noqa: TID251 - a test waiting for another process, not event-loop code
    raise AssertionError("the server group did not start")


@pytest.mark.timeout(90)
def test_workers_group_shares_its_port_and_nobody_else_does(tmp_path: Path) -> None:
    """`serve --workers 2` serves; a later `serve` or `serve --workers 2` on that port exits 2
    with one clear line and no traceback."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_STATE_HOME": str(tmp_path / "state"),
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    group = _serve(port, env, "--workers", "2")
    try:
        _wait_serving(port, group)
        late_ones = [_serve(port, env, *extra) for extra in ((), ("--workers", "2"))]
        for late in late_ones:
            _, err = late.communicate(timeout=60)
            assert late.returncode == 2, err[-2000:]
            assert f"routecore: cannot serve gRPC on 127.0.0.1:{port}: the address is already " \
                   "in use" in err
            assert "Traceback" not in err
        assert group.poll() is None  # the group keeps serving
    finally:
        group.send_signal(signal.SIGTERM)
        group.communicate(timeout=30)


@pytest.mark.timeout(60)
def test_startup_line_says_whether_auth_is_on(tmp_path: Path) -> None:
    """The `serving` line tells an operator that auth is off in plain words, not a redacted '***'."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_STATE_HOME": str(tmp_path / "state"),
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    proc = _serve(port, env)
    try:
        _wait_serving(port, proc)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    line = next(ln for ln in err.splitlines() if '"serving"' in ln)
    assert '"auth": "off"' in line and "***" not in line, line
