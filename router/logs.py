"""Process logging: text or JSON lines, the ``pii`` field redacted, no query strings.

House rule (docs/security.md): transcripts, resident ids and anything else personal go into
a log record only under ``extra={"pii": {...}}``. This module decides whether that field is
printed: redacted by default outside the demo (``--log-pii`` / BATON_LOG_PII=1 keeps it, for
debugging on a machine that may hold it). Transcript text (``pii.text``) is printed only with
``--log-transcripts`` / BATON_LOG_TRANSCRIPTS=1 on top of that.

The access log (uvicorn.access) prints the path without its query string: a query string can
hold a resident id, and once held a token.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

REDACTED = "[redacted]"
# LogRecord's own attributes: everything else on a record came from ``extra``.
_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@dataclass(frozen=True, slots=True)
class LogPolicy:
    json: bool = False
    keep_pii: bool = False
    keep_transcripts: bool = False


def policy_from_env(*, demo: bool = False, json_format: bool | None = None,
                    keep_pii: bool | None = None,
                    keep_transcripts: bool | None = None) -> LogPolicy:
    """Flags over BATON_LOG_FORMAT (text | json), BATON_LOG_PII, BATON_LOG_TRANSCRIPTS.
    The demo keeps PII (it has only made-up residents) but still not transcripts."""
    env = os.environ
    if json_format is None:
        json_format = env.get("BATON_LOG_FORMAT", "text").lower() == "json"
    if keep_pii is None:
        keep_pii = demo or env.get("BATON_LOG_PII") == "1"
    if keep_transcripts is None:
        keep_transcripts = env.get("BATON_LOG_TRANSCRIPTS") == "1"
    return LogPolicy(json=json_format, keep_pii=keep_pii,
                     keep_transcripts=keep_pii and keep_transcripts)


def redact(value, policy: LogPolicy):
    if not policy.keep_pii:
        return REDACTED
    if isinstance(value, dict) and not policy.keep_transcripts and "text" in value:
        return {**value, "text": REDACTED}
    return value


class PiiFilter(logging.Filter):
    """Rewrites ``record.pii`` before any formatter sees it (ours or a deployment's)."""

    def __init__(self, policy: LogPolicy):
        super().__init__()
        self.policy = policy

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "pii"):
            record.pii = redact(record.pii, self.policy)
        return True


class NoQueryString(logging.Filter):
    """Drops the query string of any path argument: uvicorn's access lines (client, method,
    path, version, status) and its WebSocket lines on uvicorn.error (client, path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_path(a) for a in args):
            record.args = tuple(a.split("?", 1)[0] if _is_path(a) else a for a in args)
        return True


def _is_path(value) -> bool:
    return isinstance(value, str) and value.startswith("/") and "?" in value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
               "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def install(policy: LogPolicy, level: int = logging.INFO) -> None:
    """Root handler with the policy's format; the PII filter on every handler we own and on
    uvicorn's, the query-string filter on the access log."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if policy.json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(PiiFilter(policy))
    handler.addFilter(NoQueryString())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # plugin set-up chatter
    for name in ("uvicorn.access", "uvicorn.error"):  # for handlers a deployment adds
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoQueryString) for f in logger.filters):
            logger.addFilter(NoQueryString())

