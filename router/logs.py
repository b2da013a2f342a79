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
    """uvicorn.access records: args are (client, method, path with query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


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
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # plugin set-up chatter
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, NoQueryString) for f in access.filters):
        access.addFilter(NoQueryString())

