"""Requests that aiohttp refuses before any handler runs (a malformed request line, a bad
Content-Length, a header too long, TLS on the plain port): one line, not a traceback.

aiohttp answers them 400 itself and logs "Error handling request" at ERROR with the parser's
whole traceback; on a public port that is noise by the thousand (a fuzz round made 1,787) that
buries real errors. This filter on aiohttp's server logger rewrites exactly those records, the
parser's HttpProcessingError, to one INFO line with the client and the reason; anything else
aiohttp logs there (a real bug) keeps its traceback.
"""
from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class RefusedRequests(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        level = logging.DEBUG if record.levelno <= logging.DEBUG else logging.INFO  # aiohttp: DEBUG for TLS/junk
        client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.msg, record.args = "bad request from %s: %s %s", (client, exc.code, _one_line(exc.message))
        record.exc_info = record.exc_text = None
        return logging.getLogger(SERVER_LOGGER).isEnabledFor(level)  # logger.exception bypassed the level check


def _one_line(message: str) -> str:
    return " ".join(str(message).split()).removesuffix(" ^")[:200]  # "^": the parser's pointer, lost on one line


def install() -> None:
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, RefusedRequests) for f in logger.filters):
        logger.addFilter(RefusedRequests())
