"""Serve plane-mcp-server's API-key (header) transport on loopback, mounted where the server
mounts it (``/http/api-key``). Run with the MCP virtualenv's python: ``_http_server.py PORT``.

The server's own ``http`` mode always listens on 0.0.0.0:8211; the tests need a free loopback
port, so this builds the same app from the server's factory and runs it with uvicorn.
"""

import sys

import uvicorn
from plane_mcp.server import get_header_mcp
from starlette.applications import Starlette
from starlette.routing import Mount


def main() -> None:
    port = int(sys.argv[1])
    header_app = get_header_mcp().http_app(stateless_http=True)
    app = Starlette(
        routes=[Mount("/http/api-key", app=header_app)],
        lifespan=lambda _app: header_app.lifespan(header_app),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
