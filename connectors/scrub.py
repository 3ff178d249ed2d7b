"""Keeps secrets out of text that leaves the process: log lines, error messages, stored run errors.

Three layers, each cheap: URLs lose their `user:password@` part and the values of credential-like
query parameters; header forms (`Authorization: ...`, `'Authorization': '...'`, `Bearer ...`) lose their
values; and every secret value vsm has read (with its Basic/SMTP base64 forms) is replaced by `***`.
`SecretFilter` applies them to every log record a handler emits.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
# Secrets shorter than this are not replaced inside other text: they would mangle ordinary words.
MIN_SECRET_LENGTH = 6

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SENSITIVE_PARAM = re.compile(
    r"(?i)(^|[?&;])((?:access_?|auth_?|private_?|refresh_?|id_?)?token|api_?key|apikey|key|password|passwd|pwd"
    r"|secret|client_secret|auth|signature|sig|x-amz-signature|x-amz-credential|code)=([^&;#]*)")
_HEADER = re.compile(
    r"(?i)\b(authorization|proxy-authorization|x-api-key|private-token|x-auth-token|cookie|set-cookie)"
    r"(['\"]?\s*[:=]\s*['\"]?)([^'\"\r\n,}]+)")
_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# Prefixes of well-known token formats (GitHub, GitLab, Slack, Atlassian, OpenAI-style, AWS access keys).
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "ATATT",
                   "sk-", "AKIA")
_ENV_STYLE = re.compile(r"^[A-Z][A-Z0-9_]*$")

_known: set[str] = set()
_known_lock = threading.Lock()


def looks_like_secret(text: str) -> bool:
    """True when a value meant to NAME a variable looks like the secret itself (so it is never echoed)."""
    if len(text) < 20:
        return False
    if text.startswith(_TOKEN_PREFIXES):
        return True
    if _ENV_STYLE.match(text) or re.search(r"\s", text):
        return False
    if re.fullmatch(r"[0-9a-fA-F]{32,}", text):  # hex API tokens (Jenkins)
        return True
    # random-looking: upper and lower case letters and digits together (PagerDuty keys, passwords)
    return any(c.islower() for c in text) and any(c.isupper() for c in text) and any(map(str.isdigit, text))


def secret_forms(secret: str, user: str | None = None) -> list[str]:
    """The secret and the encodings it travels in: base64 of itself, Basic `user:secret`, SMTP AUTH PLAIN."""
    forms = [secret, base64.b64encode(secret.encode()).decode()]
    if user:
        forms += [base64.b64encode(f"{user}:{secret}".encode()).decode(),
                  base64.b64encode(f"\0{user}\0{secret}".encode()).decode()]
    return forms


def remember(secret: str | None, user: str | None = None) -> None:
    """Register a secret vsm holds (and its encoded forms) so `scrub` replaces it wherever it shows up."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return
    with _known_lock:
        _known.update(form for form in secret_forms(secret, user) if len(form) >= MIN_SECRET_LENGTH)


def forget_all() -> None:
    """Drop every registered secret (for embedding code and tests that load several configs)."""
    with _known_lock:
        _known.clear()


def scrub_url(url: str) -> str:
    """A URL without its `user:password@` part and with credential-like query values replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return _SENSITIVE_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}={REDACTED}", url)
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = _SENSITIVE_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}={REDACTED}", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Text with URL credentials, header values and every known secret (plus `secrets`) replaced by ***."""
    cleaned = _URL.sub(lambda m: scrub_url(m.group(0)), text)
    cleaned = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", cleaned)
    cleaned = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", cleaned)
    with _known_lock:
        values = _known | {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    for value in sorted(values, key=len, reverse=True):
        cleaned = cleaned.replace(value, REDACTED)
    return cleaned


class SecretFilter(logging.Filter):
    """A handler filter that scrubs each record's message, traceback and stack text before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when scrubbing changes it; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the formatter's to report, not ours
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
