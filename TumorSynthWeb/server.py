"""The web server: one HTTP + WebSocket server, one ``WebSession`` (its own MRML scene, views
and state) per browser connection, so two users never see each other's scene.

trame's single server shares one state between every client; here each WebSocket connection
gets a fresh trame server (``get_server(<uuid>)``) running as a task in the same event loop,
and the static page (trame's client and the widget modules) is served once. Rendering is on
the CPU without a display: VTK uses EGL (Mesa llvmpipe on machines without a GPU);
``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow`` is set before VTK loads, skipping the X11
attempt.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import uuid
from typing import Any, Callable

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable only from this machine."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configure_rendering() -> None:
    """Off-screen EGL rendering unless the user chose a window class (must run before VTK
    is imported)."""
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


class SessionServer:
    """aiohttp application: ``/`` the page, ``/ws`` one new ``WebSession`` per connection."""

    def __init__(self, make_session: Callable[[str], Any], *, max_msg_size: int = 200_000_000,
                 heartbeat: float = 30.0) -> None:
        import aiohttp.web as web

        self.make_session = make_session
        self.ws_options = {"max_msg_size": max_msg_size, "heartbeat": heartbeat}
        self.sessions: dict[str, Any] = {}
        self.app = web.Application(client_max_size=max_msg_size)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/ws", self._websocket)
        self._add_static_routes()
        self._stopped: asyncio.Future | None = None

    def _add_static_routes(self) -> None:
        """The client files, taken from a page built once (same widget modules as a session)."""
        import aiohttp.web as web
        from trame.app import get_server

        from . import ui

        www = get_server("__www__", client_type="vue3")
        ui.enable_client_modules(www)
        routes = [web.static(f"/{route}", www.serve[route], append_version=True)
                  for route in sorted(www.serve, reverse=True)]
        routes.append(web.static("/", www._www, append_version=True))
        self.app.add_routes(routes)

    async def _index(self, request: Any) -> Any:
        import aiohttp.web as web

        query = f"?{request.query_string}" if request.query_string else ""
        raise web.HTTPFound(f"index.html{query}")

    async def _websocket(self, request: Any) -> Any:
        import aiohttp
        import aiohttp.web as web
        from trame.app.core import AVAILABLE_SERVERS

        name = uuid.uuid4().hex
        session = self.make_session(name)
        self.sessions[name] = session
        task = session.server.start(backend="generic", exec_mode="task")
        await session.server.ready
        socket = web.WebSocketResponse(**self.ws_options)
        connection = None

        async def forward(binary: bool, content: Any) -> None:
            await (socket.send_bytes(content) if binary else socket.send_str(content))

        try:
            await socket.prepare(request)
            connection = await session.server._server.ws.connect()
            connection.on_message(forward)
            async for message in socket:
                await connection.send(message.type == aiohttp.WSMsgType.BINARY, message)
        finally:
            if connection is not None:
                await connection.close()
            await session.server.stop()
            await task
            session.close()
            self.sessions.pop(name, None)
            AVAILABLE_SERVERS.pop(name, None)
            log.info("session %s closed", name)
        return socket

    async def run(self, host: str, port: int, ready: Callable[[str], None] | None = None) -> None:
        import aiohttp.web as web

        runner = web.AppRunner(self.app, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        url = f"http://{'localhost' if is_loopback(host) else host}:{bound[1]}/"
        if ready is not None:
            ready(url)
        self._stopped = asyncio.get_running_loop().create_future()
        try:
            await self._stopped
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(True)


def serve(host: str = "127.0.0.1", port: int = 8080, *, allow_paths: bool = True,
          test_hooks: bool = False, ready: Callable[[str], None] | None = None) -> None:
    """Run the web front end until interrupted (Ctrl-C)."""
    configure_rendering()
    from .app import WebSession

    def make_session(name: str) -> WebSession:
        return WebSession(name, allow_paths=allow_paths, test_hooks=test_hooks)

    server = SessionServer(make_session)
    asyncio.run(server.run(host, port, ready))


__all__ = ["SessionServer", "configure_rendering", "is_loopback", "serve"]
