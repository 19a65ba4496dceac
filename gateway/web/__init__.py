"""The browser agent dashboard: a static page (plain JS, mqtt.js over WebSockets) and the small HTTP server that serves it."""

from gateway.web.server import DashboardServer, main

__all__ = ["DashboardServer", "main"]
