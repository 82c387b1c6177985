"""The part of `requests` a plugin uses, on gitauto's `http` interface.

CPython built for WASI has no `socket` module that connects (and gitauto gives plugins
no sockets), so `urllib.request` and `requests` cannot reach anything from a
componentize-py component. This module is their calling convention on the interface
gitauto does give: `get`, `post`, `put`, `patch`, `delete`, `head` with `headers=`,
`json=`, `data=` and `timeout=` (seconds), answering a `Response` with `status_code`,
`headers`, `content`, `text`, `json()` and `raise_for_status()`.

The host applies the plugin's grant to every request and hop: only granted hosts, no
private addresses through names, the step's deadline, and the credential the config
holds for a host (added by the host; the plugin never sees it).
"""

import json as json_module

from componentize_py_types import Err
from wit_world.imports import http

_METHODS = {
    "GET": http.Method.GET,
    "HEAD": http.Method.HEAD,
    "POST": http.Method.POST,
    "PUT": http.Method.PUT,
    "PATCH": http.Method.PATCH,
    "DELETE": http.Method.DELETE,
    "OPTIONS": http.Method.OPTIONS,
}


class RequestException(Exception):
    """A request that got no response: refused by the grant, timed out, failed to connect."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class HTTPError(RequestException):
    """`raise_for_status()` on a 4xx or 5xx answer."""

    def __init__(self, response: "Response"):
        super().__init__("status", f"{response.status_code} from {response.url}")
        self.response = response


class Response:
    """An answer, its body read whole (gitauto bounds it by the step's memory)."""

    def __init__(self, url: str, answer):
        self.url = url
        self.status_code = answer.status
        self.headers = {name: value for name, value in answer.headers}
        self.content = bytes(answer.body)

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json_module.loads(self.content)

    def raise_for_status(self) -> None:
        if not self.ok:
            raise HTTPError(self)


def request(method: str, url: str, *, headers=None, json=None, data=None, timeout=None) -> Response:
    """Sends one request and returns its response; raises `RequestException` without one."""
    headers = dict(headers or {})
    body = None
    if json is not None:
        body = json_module.dumps(json).encode()
        headers.setdefault("content-type", "application/json")
    elif isinstance(data, str):
        body = data.encode()
    elif data is not None:
        body = bytes(data)
    millis = None if timeout is None else max(1, int(timeout * 1000))
    try:
        answer = http.send(http.Request(_METHODS[method.upper()], url, list(headers.items()), body, millis))
    except Err as err:
        # e.g. `http.HttpError_Denied`: its class name says the kind, `.value` the reason.
        kind = type(err.value).__name__.split("_", 1)[-1].lower()
        raise RequestException(kind, err.value.value) from None
    return Response(url, answer)


def get(url: str, **kwargs) -> Response:
    return request("GET", url, **kwargs)


def head(url: str, **kwargs) -> Response:
    return request("HEAD", url, **kwargs)


def post(url: str, **kwargs) -> Response:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs) -> Response:
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs) -> Response:
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs) -> Response:
    return request("DELETE", url, **kwargs)
