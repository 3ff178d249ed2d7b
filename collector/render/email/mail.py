"""Mails the weekly report: multipart/alternative with inline images over SMTP, retried when transient.

Transient failures (the server cannot be reached, drops the connection, or answers 4xx) are retried
with exponential backoff; permanent ones (5xx, authentication, TLS) stop at once with one clear line.
The password is read from the environment variable the config names and never logged or put in a message.
"""

from __future__ import annotations

import email.utils
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from collector.config import SmtpConfig, secret

log = logging.getLogger(__name__)


class MailError(RuntimeError):
    """The report could not be mailed; str() is one line naming the cause (never a secret)."""


@dataclass(frozen=True)
class InlineImage:
    """A PNG shown inside the HTML part, referenced there as cid:<cid>."""

    cid: str
    png: bytes
    filename: str


def compose(subject: str, sender: str, to: Sequence[str], cc: Sequence[str], text: str, html: str,
            images: Sequence[InlineImage] = ()) -> EmailMessage:
    """multipart/alternative: the plain text, then multipart/related holding the HTML and its inline PNGs."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Date"] = email.utils.formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = email.utils.make_msgid("vsm-report", domain=domain)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    html_part = message.get_body(preferencelist=("html",))
    if html_part is None:
        raise MailError("the message has no HTML part")
    for image in images:
        html_part.add_related(image.png, "image", "png", cid=f"<{image.cid}>", filename=image.filename,
                              disposition="inline")
    return message


def _code_of(exc: BaseException) -> int | None:
    """The SMTP reply code an exception carries, if any."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return max(codes) if codes else None
    code = getattr(exc, "smtp_code", None)
    return int(code) if isinstance(code, int) else None


def _describe(exc: BaseException) -> str:
    """One line for an SMTP or network failure (the server's reply, never our credentials)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipients refused: " + ", ".join(
            f"{addr} ({code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply})"
            for addr, (code, reply) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        reply = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        return f"{exc.smtp_code} {' '.join(reply.split())}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_transient(exc: BaseException) -> bool:
    """4xx replies, dropped connections and network errors are transient; 5xx, TLS and the rest not."""
    if isinstance(exc, (smtplib.SMTPNotSupportedError, ssl.SSLError, ssl.CertificateError)):
        return False
    code = _code_of(exc)
    if code is not None:
        return 400 <= code < 500
    return isinstance(exc, (smtplib.SMTPServerDisconnected, socket.timeout, ConnectionError, OSError))


def _credentials(smtp: SmtpConfig) -> tuple[str, str] | None:
    """(user, password) from the environment variables the config names, or None for no AUTH."""
    if smtp.user_env is None and smtp.password_env is None:
        return None
    if smtp.user_env is None or smtp.password_env is None:
        raise MailError("report.smtp: set both user_env and password_env to log in, or neither")
    user, password = secret(smtp.user_env), secret(smtp.password_env)
    return str(user), str(password)


def _deliver(message: EmailMessage, smtp: SmtpConfig, recipients: list[str], login: tuple[str, str] | None,
             context: ssl.SSLContext) -> dict[str, tuple[int, bytes]]:
    """One attempt: connect, secure, authenticate, send; returns the recipients the server refused."""
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        client.ehlo()
        if smtp.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if login is not None:
            client.login(*login)
        return client.send_message(message, from_addr=email.utils.parseaddr(str(message["From"]))[1],
                                   to_addrs=recipients)


def send(message: EmailMessage, smtp: SmtpConfig, *, attempts: int = 4, backoff_s: float = 2.0,
         tls_context: ssl.SSLContext | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
    """Send to every To and Cc address; retry transient failures with backoff, raise MailError otherwise.

    TLS verifies the server against the system's trust store (SSL_CERT_FILE / SSL_CERT_DIR apply) unless a
    context is given.
    """
    recipients = [addr for _, addr in email.utils.getaddresses(
        [str(message.get("To", "")), str(message.get("Cc", ""))]) if addr]
    if not recipients:
        raise MailError("the message has no recipients (report.to)")
    login = _credentials(smtp)
    context = tls_context or ssl.create_default_context()
    where = f"{smtp.host}:{smtp.port} ({smtp.security})"
    for attempt in range(1, max(attempts, 1) + 1):
        try:
            refused = _deliver(message, smtp, recipients, login, context)
        except (smtplib.SMTPException, OSError) as exc:
            reason = _describe(exc)
            if not _is_transient(exc):
                raise MailError(f"mail to {where} failed: {reason}") from None
            if attempt >= attempts:
                raise MailError(f"mail to {where} failed after {attempt} attempts: {reason}") from None
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("mail to %s: %s; retrying in %.0fs (attempt %d of %d)", where, reason, delay, attempt,
                        attempts)
            sleep(delay)
            continue
        if refused:
            log.warning("mail to %s: the server refused %s", where, ", ".join(sorted(refused)))
        log.info("mailed %r to %d recipient(s) via %s", str(message["Subject"]),
                 len(recipients) - len(refused), where)
        return
