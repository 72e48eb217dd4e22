"""The access log without secrets: a ``token=`` query value is written as ``token=***``.

The API takes bearer tokens in the Authorization header only, but a dashboard link or a
BI tool's URL may still carry ``?token=...``; uvicorn would log the path as it came.
"""

from __future__ import annotations

import logging
import re

# token=, access_token=, api_token=, … up to the next & or the end, percent-encoded or not.
_TOKEN_VALUE = re.compile(r"((?:^|[?&;])[A-Za-z_]*token=)[^&;#\s]*", re.IGNORECASE)


def redact_tokens(text: str) -> str:
    """``text`` with every token-named query value replaced by ``***``."""
    return _TOKEN_VALUE.sub(r"\1***", text)


class RedactTokens(logging.Filter):
    """A filter for uvicorn's access logger: its path argument has its tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    """Redact tokens in the access log (call after uvicorn has configured logging)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
