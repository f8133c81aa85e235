"""An azure-core transport that sends ``https://`` requests over plain HTTP.

``ServiceBusAdministrationClient`` always builds ``https://<namespace>`` addresses, even with
``UseDevelopmentEmulator=true``; the emulator's management API is plain HTTP, so a client passes
``transport=plain_http_transport()`` (a standard azure-core option; the SDK is not modified).
"""

from __future__ import annotations

from typing import Any

__all__ = ["plain_http_transport"]


def plain_http_transport(**kwargs: Any) -> Any:
    """An ``AioHttpTransport`` (azure-core, aiohttp) that rewrites ``https://`` to ``http://``."""
    from azure.core.pipeline.transport import AioHttpTransport

    class PlainHttpTransport(AioHttpTransport):  # type: ignore[misc]
        async def send(self, request: Any, **options: Any) -> Any:
            if request.url.startswith("https://"):
                request.url = "http://" + request.url[len("https://") :]
            return await super().send(request, **options)

    return PlainHttpTransport(**kwargs)
