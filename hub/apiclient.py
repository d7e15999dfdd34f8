"""A small synchronous client of the hub's REST api, used by the CLI commands.

The CLI finds the api at ``--api-url`` or ``GOVHUB_API_URL`` (default
``http://127.0.0.1:8480``) and authenticates with ``--token`` or ``GOVHUB_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

DEFAULT_API_URL = "http://127.0.0.1:8480"


class ApiError(Exception):
    """The api answered with an error, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class ApiClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                doc = orjson.loads(raw)
                message = doc.get("error") or doc.get("message") or str(doc)
            except (orjson.JSONDecodeError, AttributeError):
                message = raw.decode(errors="replace") or str(exc.reason)
            raise ApiError(exc.code, str(message)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"cannot reach the api at {self.url}: {exc}") from None
        return orjson.loads(raw) if raw else None


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--api-url`` and ``--token`` for a CLI command that talks to the api."""
    parser.add_argument(
        "--api-url", default=None, help=f"default $GOVHUB_API_URL or {DEFAULT_API_URL}"
    )
    parser.add_argument("--token", default=None, help="default $GOVHUB_TOKEN")


def client_from_args(args: argparse.Namespace) -> ApiClient:
    url = args.api_url or os.environ.get("GOVHUB_API_URL") or DEFAULT_API_URL
    token = args.token or os.environ.get("GOVHUB_TOKEN")
    return ApiClient(url, token)


# -- shared CLI plumbing of the commands that talk to the api ------------------------------
EXIT_OK = 0
EXIT_ERROR = 2

Handler = Callable[[argparse.Namespace, ApiClient], int]


class CommandError(Exception):
    """A problem on the caller's side (an argument, a file), reported in one line."""


def guarded(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Errors become one line ``govhub: error: ...`` on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args, client_from_args(args))
        except (ApiError, CommandError) as exc:
            print(f"govhub: error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = handler.__name__
    return run


def add_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    """One ``govhub <command> <action>`` with the api client options and ``--json``."""
    parser: argparse.ArgumentParser = actions.add_parser(
        name, help=help_text, description=help_text
    )
    add_client_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the api's JSON answer")
    parser.set_defaults(func=guarded(handler))
    return parser


def print_answer(args: argparse.Namespace, answer: Any, text: Callable[[Any], str]) -> int:
    """The api's answer as JSON with ``--json``, else as ``text(answer)``."""
    if args.json:
        sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(text(answer))
    return EXIT_OK
