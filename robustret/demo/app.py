"""The thin web layer over :class:`~robustret.demo.service.DemoService` (FastAPI).

``GET /`` the page, ``/static/*`` its script and style, ``GET /api/options`` the choices,
``POST /api/search`` one search (multipart form), ``GET /api/gallery/{index}.png`` a gallery
thumbnail. Every bad input is a 4xx answer ``{"detail": "one sentence"}``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from robustret.demo.service import FIELDS, MAX_UPLOAD_BYTES, DemoError, DemoService

STATIC = Path(__file__).resolve().parent / "static"
#: room for the form's other fields and the multipart framing beside the upload
FORM_OVERHEAD = 64 * 1024


def create_app(service: DemoService) -> FastAPI:
    """The web app serving ``service``."""
    app = FastAPI(title="robustret demo", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(DemoError)
    async def _demo_error(request: Request, exc: DemoError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "path")
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid request')}"},
                            status_code=422)

    @app.get("/", include_in_schema=False)
    async def _page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/options")
    async def _options() -> dict:
        return service.options()

    @app.post("/api/search")
    async def _search(request: Request) -> dict:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + FORM_OVERHEAD:
            raise DemoError(f"the upload is over the limit of {MAX_UPLOAD_BYTES // 2**20} MB",
                            413)
        try:
            form = await request.form(max_files=1, max_fields=len(FIELDS) + 1)
        except Exception as exc:  # a malformed body of any kind: Starlette raises several
            raise DemoError(f"the request is not a valid form ({exc})") from exc
        try:
            image = None
            upload = form.get("image")
            if isinstance(upload, UploadFile):
                image = await upload.read(MAX_UPLOAD_BYTES + 1)
            elif isinstance(upload, str) and upload != "":
                raise DemoError("image must be a file upload")
            fields = {name: value for name, value in form.items()
                      if name != "image" and isinstance(value, str)}
            parsed = service.parse(fields, image)
        finally:
            await form.close()
        result = await run_in_threadpool(service.search, parsed)
        return await run_in_threadpool(result.to_json)

    @app.get("/api/gallery/{index}.png")
    async def _gallery(index: int) -> Response:
        return Response(service.gallery_png(index), media_type="image/png",
                        headers={"Cache-Control": "max-age=3600"})

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: a free one; read it back with
    ``getsockname()``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def make_server(app: FastAPI, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``app``; start it with ``server.run(sockets=[bind(...)])``."""
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
