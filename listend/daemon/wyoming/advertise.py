"""Zeroconf (mDNS) advertisement, so Home Assistant's Wyoming integration discovers listend.

Home Assistant browses ``_wyoming._tcp.local.``, connects to the advertised address and port,
asks for ``info`` and uses the zeroconf instance name (with the program name) as the entry's
unique id: a stable per-host name matters, the TXT properties are informational.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Sequence

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from listend import __version__

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = "224.0.0.251"
_ANY = {"0.0.0.0", "::", ""}  # noqa: S104 - the listen addresses meaning "every interface"


def advertised_address(listen_host: str) -> str:
    """The address to advertise: the listen address, or the one that reaches the LAN."""
    if listen_host not in _ANY:
        return listen_host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:  # a UDP connect only picks the outgoing interface: no packet is sent
            probe.connect((_MDNS_GROUP, 5353))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def service_info(name: str, address: str, port: int) -> AsyncServiceInfo:
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        addresses=[socket.inet_pton(_family(address), address)],
        port=port,
        properties={"program": "listend", "version": __version__, "asr": "true"},
        server=f"{name}.local.",
    )


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@contextlib.asynccontextmanager
async def advertise(
    info: AsyncServiceInfo, *, interfaces: Sequence[str] | None = None
) -> AsyncIterator[AsyncZeroconf | None]:
    """Registered while open (None when mDNS is impossible here: logged, serving goes on)."""
    v6 = _family(info.parsed_addresses()[0]) == socket.AF_INET6
    zc: AsyncZeroconf | None = None
    try:
        zc = AsyncZeroconf(
            interfaces=list(interfaces) if interfaces is not None else InterfaceChoice.All,
            ip_version=IPVersion.All if v6 else IPVersion.V4Only,
        )
        announcing = await zc.async_register_service(info)
    except OSError as exc:
        log.warning("wyoming: cannot advertise over zeroconf (%s); add it by host and port", exc)
        if zc is not None:
            await zc.async_close()
        yield None
        return
    try:  # from here on a stop, even during the announcements, sends the goodbyes
        await announcing
        log.info("wyoming: advertised as %s", info.name)
        yield zc
    finally:
        await (await zc.async_unregister_service(info))
        await zc.async_close()
