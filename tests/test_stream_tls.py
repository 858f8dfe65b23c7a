"""``wss://`` streams: verified against the system CA store, through one shared TLS context
(asyncio's default builds one per connection, ~0.9 MB of RSS each)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess

import pytest
import websockets

from listend.daemon.stream import deepgram
from listend.daemon.stream.deepgram import make_client, open_stream


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1, made with the openssl command."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    key = ("-newkey", "rsa:2048", "-nodes")
    run("req", "-x509", *key, "-days", "2", "-subj", "/CN=test CA", "-keyout", "ca.key",
        "-out", "ca.crt")  # fmt: skip
    run("req", *key, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt")  # fmt: skip
    return d


@pytest.fixture
def fresh_tls_context():
    """tls_context() is built once per process: rebuild it around a test that changes what
    it trusts (SSL_CERT_FILE), so no other test sees the test CA."""
    deepgram.tls_context.cache_clear()
    yield
    deepgram.tls_context.cache_clear()


async def _with_tls_server(tls_files, body):
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tls_files / "server.crt", tls_files / "server.key")

    async def handler(ws, path=None):
        await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0, ssl=server_ctx) as server:
        port = server.sockets[0].getsockname()[1]
        await body(make_client(f"https://127.0.0.1:{port}"))


def test_wss_streams_share_one_verifying_context(tls_files, fresh_tls_context, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / "ca.crt"))

    async def two_streams(client):
        async with contextlib.AsyncExitStack() as stack:
            socks = [
                await stack.enter_async_context(open_stream(client, {"model": "x"}, None))
                for _ in range(2)
            ]
            contexts = {
                sock._websocket.transport.get_extra_info("ssl_object").context for sock in socks
            }
            assert contexts == {deepgram.tls_context()}

    asyncio.run(_with_tls_server(tls_files, two_streams))
    assert deepgram.tls_context().verify_mode == ssl.CERT_REQUIRED


def test_wss_refuses_a_server_the_system_store_does_not_trust(tls_files, fresh_tls_context):
    async def one_stream(client):
        with pytest.raises(ssl.SSLCertVerificationError):
            async with open_stream(client, {}, None):
                pass

    asyncio.run(_with_tls_server(tls_files, one_stream))
