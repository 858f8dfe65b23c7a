"""Discovery as Home Assistant does it: browse ``_wyoming._tcp.local.``, resolve, connect.

Multicast works on this machine's loopback, so the browse is real mDNS, limited to 127.0.0.1
(the daemon advertises on every interface; the browser listens on loopback only).
"""

from __future__ import annotations

import asyncio
from typing import Self

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from listend.daemon.wyoming.advertise import SERVICE_TYPE, advertised_address
from listend.testing import DeepgramTestServer
from tests.support.net import free_port
from tests.support.waiting import async_test
from tests.support.wyoming import wyoming_config, wyoming_daemon


class Browser:
    """What Home Assistant's zeroconf integration sees of one service type."""

    def __init__(self) -> None:
        self.zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        self.changes: asyncio.Queue[tuple[ServiceStateChange, str]] = asyncio.Queue()
        self.browser: AsyncServiceBrowser | None = None

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        self.changes.put_nowait((state_change, name))

    async def __aenter__(self) -> Self:
        self.browser = AsyncServiceBrowser(
            self.zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.browser is not None:
            await self.browser.async_cancel()
        await self.zc.async_close()

    async def next_change(self, name: str) -> ServiceStateChange:
        while True:
            change, found = await asyncio.wait_for(self.changes.get(), 30)
            if found == name:
                return change


@async_test
async def test_home_assistant_discovers_resolves_and_describes_listend(tmp_path):
    name = f"listend-test-{free_port()}"
    async with Browser() as browser, DeepgramTestServer() as dg:
        config = wyoming_config(tmp_path, dg, zeroconf=True, wyoming=f"  name: {name}\n")
        async with wyoming_daemon(config) as daemon:
            full = f"{name}.{SERVICE_TYPE}"
            assert await browser.next_change(full) == ServiceStateChange.Added
            info = AsyncServiceInfo(SERVICE_TYPE, full)
            assert await info.async_request(browser.zc.zeroconf, 5000)
            assert info.port == daemon.wyoming.port
            [address] = info.parsed_addresses()
            assert address == "127.0.0.1"  # the listen address, as configured
            assert info.properties[b"program"] == b"listend"
            # what Home Assistant's config flow does next: connect, ask for info
            async with AsyncTcpClient(address, info.port) as client:
                await client.write_event(Describe().event())
                event = await client.read_event()
            assert event is not None
            assert Info.from_event(event).asr[0].installed
        # a stopped daemon says goodbye, so Home Assistant does not keep a stale entry
        assert await browser.next_change(full) == ServiceStateChange.Removed


def test_the_advertised_address_is_the_listen_address_or_a_real_interface():
    assert advertised_address("192.0.2.7") == "192.0.2.7"
    assert advertised_address("0.0.0.0") not in {"0.0.0.0", ""}
