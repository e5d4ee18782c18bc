"""The body limit acts before parsing: by Content-Length, and for chunked bodies after limit + 1 bytes at most."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tunelab.serve.middleware import LimitBody


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


def _post(content, headers: dict[str, str] | None = None) -> tuple[httpx.Response, int]:
    read = 0

    async def main() -> httpx.Response:
        nonlocal read
        app = LimitBody(Starlette(routes=[Route("/", _echo, methods=["POST"])]), max_bytes=1000)

        async def counting(scope, receive, send):
            async def counted():
                nonlocal read
                message = await receive()
                read += len(message.get("body", b""))
                return message

            await app(scope, counted, send)

        async with httpx.AsyncClient(transport=httpx.ASGITransport(counting), base_url="http://test") as client:
            return await client.post("/", content=content, headers=headers)

    response = asyncio.run(main())
    return response, read


async def _chunks(size: int, count: int):
    for _ in range(count):
        yield b"x" * size


def test_small_bodies_pass_whole():
    response, _ = _post(b"x" * 1000)
    assert response.json() == {"bytes": 1000}
    response, _ = _post(_chunks(100, 10))
    assert response.json() == {"bytes": 1000}


def test_a_declared_large_body_is_refused_unread():
    response, read = _post(b"x" * 5000)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert read == 0


def test_a_chunked_body_is_refused_after_the_limit():
    response, read = _post(_chunks(300, 100))
    assert response.status_code == 413 and read <= 1000 + 300
