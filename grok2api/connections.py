"""How the connections of ``grok2api serve`` differ from hypercorn's own: their writes are batched per loop turn
(``write_batching``) and their keep-alive watch is a timer (``keep_alive``)."""

from __future__ import annotations

from typing import Any

from .keep_alive import IdleTimer
from .write_batching import BatchingWriter, serving_writer


def install() -> None:
    """Make hypercorn's asyncio worker build every connection this way (once per process; the serve command
    calls it in each worker)."""
    from hypercorn.asyncio import run, tcp_server

    names = vars(run)  # hypercorn's worker builds each connection with the name ``TCPServer`` it imported
    if names.get("TCPServer") is not tcp_server.TCPServer:
        return  # installed already (or hypercorn no longer builds connections this way)

    class GatewayTCPServer(tcp_server.TCPServer):
        batches_writes = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.writer = BatchingWriter(self.writer)  # type: ignore[assignment]
            self.idle_task = IdleTimer(self)  # type: ignore[assignment]

        async def run(self) -> None:
            # The requests' tasks are started from this one and copy its context: they find their writer there.
            with serving_writer(self.writer):  # type: ignore[arg-type]
                await super().run()

    names["TCPServer"] = GatewayTCPServer
