"""``grok2api serve``: hypercorn set up against slow and abusive clients, one or more worker processes, and a
graceful shutdown.

Slow clients. hypercorn closes a connection that has not sent a whole request head within its
``keep_alive_timeout`` (the same timer closes an idle keep-alive connection), so that is the head timeout. It has
no body timeout that would spare a client reading a long, quiet answer (its ``read_timeout`` would cut those too),
so the body deadline is the edge's (``traffic.BodyDeadline``). hypercorn has no connection cap either: each
worker's listening socket refuses connections beyond ``GROK2API_MAX_CONNECTIONS`` (a short 503, then closed) and
logs that at most once a minute.

Shutdown. On SIGTERM or SIGINT a worker starts draining: /readyz answers 503, new requests get 503 with
``Retry-After``, and requests in flight (streams included) get up to ``GROK2API_SHUTDOWN_GRACE_SECONDS`` to finish
and settle their leases. Then hypercorn closes the listener and the app shuts down (what is still running is
cancelled, which settles its lease too). With several workers the parent passes the signal on; a worker that
gets the signal itself (systemd signals every process of the service) drains the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app
from starlette.applications import Starlette

from . import http1
from .config import BootConfig
from .http1 import BUSY, ConnectionLimit, http_date
from .logs import stop_writing
from .serving import http_server, loop_factory, tune_gc, worker_class

log = logging.getLogger("grok2api.serve")

SHUTDOWN_TAIL = 2.0  # seconds hypercorn waits, after the drain, for connections to close before cancelling them


class ServerConfig(Config):
    """hypercorn's ``Config`` with the headers it adds to every response made once per second: a ``Date``
    formatted once a second rather than per response, and no ``Server`` header (it named hypercorn's version to
    every client). No Alt-Svc either: the gateway serves no HTTP/3."""

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        return [(b"date", http_date())] if self.include_date_header else []


def hypercorn_config(boot: BootConfig, bind: str) -> Config:
    """hypercorn's settings. Its error logger is handed over as a logger, not as a stream: hypercorn then adds no
    handler of its own, so each line goes once through the gateway's handlers (its format, its request ids). It
    writes no access line: the edge does (``edge_layer``), for a fraction of the cost."""
    config = ServerConfig()
    config.bind = [bind]
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    config.backlog = 2048  # bursts of hundreds of new connections must not overflow the accept queue
    config.keep_alive_timeout = boot.header_timeout  # a whole request head within this, or the connection closes
    config.read_timeout = None  # never: a client reading a long, quiet answer sends nothing for minutes
    config.graceful_timeout = SHUTDOWN_TAIL  # the drain comes first (see serve_worker)
    return config


# -- the connection cap -----------------------------------------------------------------------------


class _CountedSocket(socket.socket):
    """An accepted connection that gives its place back when it closes."""

    limit: ConnectionLimit | None = None

    def close(self) -> None:
        limit, self.limit = self.limit, None
        if limit is not None:
            limit.open -= 1
        super().close()


class CappedListener(socket.socket):
    """A listening socket whose ``accept`` refuses connections beyond the cap. asyncio's accept loop calls
    ``accept``; a refusal ends that round (ConnectionAbortedError), and the next round takes the rest."""

    def __init__(self, sock: socket.socket, limit: ConnectionLimit) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.limit = limit

    def accept(self) -> tuple[socket.socket, Any]:
        fd, addr = self._accept()  # type: ignore[attr-defined]
        conn = _CountedSocket(self.family, self.type, self.proto, fileno=fd)
        if self.limit.open >= self.limit.cap:
            try:
                conn.setblocking(False)
                conn.send(BUSY)  # best effort: a fresh socket's send buffer has room for it
            except OSError:
                pass
            conn.close()
            self.limit.note_refusal()
            raise ConnectionAbortedError("over the connection cap")
        self.limit.open += 1
        conn.limit = self.limit
        return conn, addr


def capped(sockets: Sockets, limit: ConnectionLimit) -> Sockets:
    return Sockets(
        [CappedListener(s, limit) for s in sockets.secure_sockets],
        [CappedListener(s, limit) for s in sockets.insecure_sockets],
        sockets.quic_sockets,
    )


# -- one worker -------------------------------------------------------------------------------------


async def serve_worker(
    app: Starlette,
    config: Config,
    sockets: Sockets,
    stopping: asyncio.Event,
    boot: BootConfig,
    limit: ConnectionLimit | None = None,
) -> None:
    """Serve ``app`` on ``sockets`` until ``stopping`` is set, then drain and stop (see the module docstring).
    ``limit`` counts the connections (one of ``boot.max_connections`` by default)."""
    traffic = app.state.services.traffic
    limit = limit or ConnectionLimit(boot.max_connections)

    async def drained() -> None:
        await stopping.wait()
        traffic.begin_drain()
        if traffic.in_flight:
            grace = boot.shutdown_grace
            log.info("shutting down: %d request(s) in flight get up to %g s to finish", traffic.in_flight, grace)
        if not await traffic.wait_idle(boot.shutdown_grace):
            log.warning("shutting down: %d request(s) still in flight are cancelled", traffic.in_flight)

    if http_server(boot.http_server, tls=bool(sockets.secure_sockets)) == "builtin":
        await http1.serve(
            app,
            sockets.insecure_sockets,
            drained,
            header_timeout=boot.header_timeout,
            limit=limit,
            backlog=config.backlog,
            close_timeout=SHUTDOWN_TAIL,
        )
        return
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    await worker_serve(wrapped, config, sockets=capped(sockets, limit), shutdown_trigger=drained)


async def run_worker(
    app: Starlette, config: Config, sockets: Sockets, boot: BootConfig, parent_stop: ProcessEvent | None = None
) -> None:
    """``serve_worker`` until SIGTERM or SIGINT (or the parent's stop event)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    watcher = asyncio.ensure_future(_watch(parent_stop, stopping)) if parent_stop is not None else None
    try:
        await serve_worker(app, config, sockets, stopping, boot)
    finally:
        if watcher is not None:
            watcher.cancel()


async def _watch(parent_stop: ProcessEvent, stopping: asyncio.Event) -> None:
    while not parent_stop.is_set():
        await asyncio.sleep(0.1)
    stopping.set()


async def _migrate_once(boot: BootConfig) -> None:
    """Bring the schema to head here, before the workers start and each opens the store (SQLite cannot
    serialize several processes creating a fresh schema). A store that cannot be reached now is left to the
    workers, which serve 503 until it answers."""
    from .store import make_store

    boot.data_dir.mkdir(parents=True, exist_ok=True)
    store = make_store(boot.storage_mode, boot.database_url, boot.data_dir, timeout=boot.store_timeout)
    try:
        await store.open()
    except Exception as exc:  # the workers report the outage and recover by themselves
        log.warning("could not prepare the store before starting the workers: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            await store.close()


class _SaidOnce(logging.Filter):
    """The server says where it runs in every worker; the first worker's line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Running on")


def _worker_main(config: Config, sockets: Sockets, parent_stop: ProcessEvent | None, index: int = 0) -> None:
    """A worker process: its own app, built from the environment it inherited, on the chosen event loop
    (uvloop when installed), its connections writing in batches."""
    from . import connections
    from .app import create_app

    if index:
        for name in ("hypercorn.error", log.name):  # hypercorn's line, or the built-in server's
            logging.getLogger(name).addFilter(_SaidOnce())
    boot = BootConfig.from_env()
    connections.install()
    app = create_app(boot)
    tune_gc()  # the app is built: what exists now lives as long as the worker
    try:
        with asyncio.Runner(loop_factory=loop_factory(worker_class(boot.event_loop))) as runner:
            runner.run(run_worker(app, config, sockets, boot, parent_stop))
    finally:
        stop_writing()  # the lines still queued (a worker process ends without ``atexit``)


# -- the command ------------------------------------------------------------------------------------


def serve(boot: BootConfig, bind: str, workers: int) -> int:
    """Run the gateway; returns the exit code (0 after a clean shutdown)."""
    from .logs import setup_logging

    loop = worker_class(boot.event_loop)  # an unknown or missing event loop stops here, before any socket
    http_server(boot.http_server)  # and so does an unknown or missing HTTP server
    setup_logging(boot.log_format, boot.environ.get("GROK2API_LOG_FILE", ""))  # spawned workers set up their own
    config = hypercorn_config(boot, bind)
    sockets = config.create_sockets()
    log.info("serving on %s: %d worker process(es), %s event loop", bind, workers, loop)
    if workers <= 1:
        _worker_main(config, sockets, None)
        return 0
    asyncio.run(_migrate_once(boot))
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    processes = [
        ctx.Process(
            target=_worker_main, kwargs={"config": config, "sockets": sockets, "parent_stop": stop, "index": index}
        )
        for index in range(workers)
    ]
    for process in processes:
        process.daemon = True
        process.start()

    def shutdown(*_: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, shutdown)
    exit_code = 0
    running = list(processes)
    while running:
        wait([p.sentinel for p in running])
        for process in [p for p in running if not p.is_alive()]:
            running.remove(process)
            if not stop.is_set():
                # A worker died on its own: stop the others too and let the supervisor (container, systemd) restart.
                log.error("worker %s exited with %s; stopping the others", process.pid, process.exitcode)
                exit_code = 1
                stop.set()
            elif process.exitcode:
                exit_code = process.exitcode
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.close()
    return exit_code
