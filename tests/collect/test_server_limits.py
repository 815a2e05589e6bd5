"""The public listener's limits against a real ``xgate serve`` on loopback: slow or oversized headers, slow
bodies and too many connections are cut off, and normal requests still pass (docs/security.md, "Limits")."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from gatewaykit import PIXEL, SERVER_KEY, SERVER_KEY_ENV

from xgate.testing import free_port, managed_process, wait_http

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_HEADER = 4096
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def gateway_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp_path = tmp_path_factory.mktemp("limits")
    port = free_port()
    config = tmp_path / "xgate.toml"
    config.write_text(
        f'[storage]\nurl = "sqlite:///{tmp_path / "outbox.db"}"\n'
        f"[server]\nheader_timeout_seconds = {HEADER_TIMEOUT}\nbody_timeout_seconds = {BODY_TIMEOUT}\n"
        f"max_header_bytes = {MAX_HEADER}\nmax_connections = {MAX_CONNECTIONS}\nmax_body_bytes = 200000\n"
        f'[[sources]]\nname = "backend"\nwrite_key_env = "{SERVER_KEY_ENV}"\n'
        f'[[destinations]]\nname = "x-main"\npixel_id = "{PIXEL}"\n'
        f'events = {{ purchase = "tw-{PIXEL}-o87ne" }}\n'
    )
    args = [sys.executable, "-m", "xgate", "serve", "--config", str(config), "--port", str(port)]
    args.append("--no-dispatch")
    log = tmp_path / "serve.log"
    with managed_process(args, {**os.environ, SERVER_KEY_ENV: SERVER_KEY}, log) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc, log=log)
        yield port


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket timeout: 10 s)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_connection_whose_headers_trickle_in_is_closed_after_the_header_timeout(gateway_port: int) -> None:
    with connect(gateway_port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: gw\r\n")
        sock.settimeout(0.25)
        answer = b""
        while time.monotonic() - started < 8:  # a header byte every 0.25 s, never the end of headers
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    break
                continue
            if not chunk:
                break
            answer += chunk
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"request_timeout"' in answer
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + 3


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(gateway_port: int) -> None:
    with connect(gateway_port) as sock:
        started = time.monotonic()
        answer = read_until_closed(sock)
        assert time.monotonic() - started < HEADER_TIMEOUT + 3
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_the_header_timeout_applies_to_the_next_request_of_a_kept_alive_connection(gateway_port: int) -> None:
    with connect(gateway_port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")  # never finished
        started = time.monotonic()
        answer = read_until_closed(sock)
        assert time.monotonic() - started < HEADER_TIMEOUT + 3
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_headers_beyond_the_limit_are_refused_with_431_and_the_connection_closed(gateway_port: int) -> None:
    with connect(gateway_port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * (MAX_HEADER * 4))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"max_header_bytes" in answer
    # headers within the limit pass
    ok = httpx.get(f"http://127.0.0.1:{gateway_port}/healthz", headers={"X-Fits": "a" * (MAX_HEADER // 2)})
    assert ok.status_code == 200


def test_a_body_sent_with_its_headers_in_one_write_does_not_count_as_header_bytes(gateway_port: int) -> None:
    event = b'{"event_name": "purchase", "id": "big-1", "user": {"email": "a@example.test"}, "description": "'
    body = event + b"d" * 900 + b'", "custom": {"pad": "' + b"p" * (MAX_HEADER * 10) + b'"}}'
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {SERVER_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with connect(gateway_port) as sock:
        sock.sendall(head.encode() + body)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]


def test_a_body_that_trickles_in_is_cut_off_after_the_body_timeout(gateway_port: int) -> None:
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {SERVER_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with connect(gateway_port) as sock:
        sock.sendall(head.encode() + b'{"event_name": ')
        started = time.monotonic()
        read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + 3


def test_connections_beyond_the_limit_are_refused_and_the_server_recovers(gateway_port: int) -> None:
    held = [connect(gateway_port) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # the server has taken them all
        with connect(gateway_port) as extra:
            answer = read_until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"http://127.0.0.1:{gateway_port}/healthz").status_code == 200
