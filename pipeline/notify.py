"""`make notify`: e-mail the summary, or put it in reports/outbox/ when no SMTP is set up.

Settings come from the environment only (the password is a secret: Jenkins credentials or the
shell, never a file in the repository):
  SMTP_HOST      the server; unset: write reports/outbox/<time>-<status>.eml instead
  SMTP_PORT      default 587 for starttls, 465 for ssl, 25 for none
  SMTP_TLS       starttls (default) | ssl | none
  SMTP_USER, SMTP_PASSWORD   log in when SMTP_USER is set (refused with SMTP_TLS=none:
                 the password would cross the network in clear)
  SMTP_CA_FILE   CA bundle to verify the server with (default: the system's)
  SMTP_TIMEOUT   seconds, default 30
  NOTIFY_TO      comma-separated recipients (required to send)
  NOTIFY_FROM    sender, default credit-risk-pipeline@<this host>
"""

from __future__ import annotations

import email.policy
import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from pipeline.report import Summary, write_summary

logger = logging.getLogger("pipeline")

TLS_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
NO_RECIPIENT = "undisclosed-recipients:;"


class NotifyError(RuntimeError):
    """The message could not be sent; the text says why and what to check."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send."""

    host: str | None
    port: int
    tls: str
    user: str | None
    password: str | None
    recipients: tuple[str, ...]
    sender: str
    ca_file: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SmtpSettings":
        """Read SMTP_* and NOTIFY_* from the environment."""
        environ = os.environ if environ is None else environ
        tls = environ.get("SMTP_TLS", "starttls").strip().lower() or "starttls"
        if tls not in TLS_MODES:
            raise NotifyError(f"SMTP_TLS={tls!r}: use one of {', '.join(TLS_MODES)}")
        try:
            port = int(environ.get("SMTP_PORT") or DEFAULT_PORTS[tls])
            timeout = float(environ.get("SMTP_TIMEOUT") or 30)
        except ValueError as error:
            raise NotifyError(f"SMTP_PORT/SMTP_TIMEOUT: {error}") from None
        user = environ.get("SMTP_USER") or None
        if user and tls == "none":
            raise NotifyError(f"SMTP_USER={user!r} with SMTP_TLS=none would send the password "
                              "in clear: use SMTP_TLS=starttls or ssl, or unset SMTP_USER for "
                              "a relay that needs no login")
        recipients = tuple(address.strip() for address in environ.get("NOTIFY_TO", "").split(",")
                           if address.strip())
        return cls(host=environ.get("SMTP_HOST") or None, port=port, tls=tls,
                   user=user,
                   password=environ.get("SMTP_PASSWORD") or None, recipients=recipients,
                   sender=environ.get("NOTIFY_FROM") or
                   f"credit-risk-pipeline@{socket.getfqdn()}",
                   ca_file=environ.get("SMTP_CA_FILE") or None, timeout=timeout)


def build_message(summary: Summary, settings: SmtpSettings) -> EmailMessage:
    """A multipart/alternative message: the text summary, then the HTML one, which is
    multipart/related with the plots as inline parts when there are plots."""
    # RFC 5322 allows 998-character lines; folding at 78 would push a subject just over
    # that length onto a continuation line, which some readers show with a leading blank.
    message = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    message["Subject"] = summary.subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients) or NO_RECIPIENT
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message["X-Pipeline-Status"] = summary.status
    message.set_content(summary.text)
    message.add_alternative(summary.mail_html, subtype="html")
    html_part = message.get_payload()[1]
    # Inline parts referenced by Content-ID: shown without loading anything remote.
    for image in summary.images:
        html_part.add_related(image.path.read_bytes(), maintype="image", subtype="png",
                              cid=f"<{image.content_id}>", filename=image.path.name,
                              disposition="inline")
    return message


def write_outbox(message: EmailMessage, reports_dir: Path, status: str) -> Path:
    """Store the message as reports/outbox/<UTC time>-<status>.eml; return its path."""
    outbox = reports_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    path = outbox / f"{stamp}-{status.lower()}.eml"
    path.write_bytes(message.as_bytes())
    return path


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.ca_file)


def send(message: EmailMessage, settings: SmtpSettings) -> None:
    """Deliver over SMTP; raise NotifyError with the server's answer when it fails."""
    if not settings.recipients:
        raise NotifyError("NOTIFY_TO is not set: no one to send the summary to")
    where = f"{settings.host}:{settings.port} ({settings.tls})"
    try:
        if settings.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host or "", settings.port,
                                                    timeout=settings.timeout,
                                                    context=_tls_context(settings))
        else:
            client = smtplib.SMTP(settings.host or "", settings.port, timeout=settings.timeout)
        with client:
            if settings.tls == "starttls":
                client.starttls(context=_tls_context(settings))
            if settings.user:
                client.login(settings.user, settings.password or "")
            refused = client.send_message(message, to_addrs=list(settings.recipients))
    except smtplib.SMTPAuthenticationError as error:
        raise NotifyError(f"SMTP server {where} refused the login for {settings.user!r}: "
                          f"{error.smtp_code} {_text(error.smtp_error)}") from error
    except smtplib.SMTPRecipientsRefused as error:
        raise NotifyError(f"SMTP server {where} refused every recipient: "
                          f"{sorted(error.recipients)}") from error
    except smtplib.SMTPResponseException as error:
        raise NotifyError(f"SMTP server {where} answered {error.smtp_code} "
                          f"{_text(error.smtp_error)}") from error
    except (smtplib.SMTPException, OSError) as error:
        # OSError covers refused connections, timeouts, DNS and certificate failures.
        raise NotifyError(f"cannot send through SMTP server {where}: {error}") from error
    if refused:
        logger.warning("SMTP server refused some recipients: %s", sorted(refused))


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def notify(reports_dir: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Send the summary, or write it to the outbox when SMTP_HOST is unset.

    Returns the outbox path in outbox mode, None when the message was sent."""
    environ = os.environ if environ is None else environ
    settings = SmtpSettings.from_env(environ)
    # Rendered fresh from reports/ (and written there), so the e-mail matches the files.
    summary = write_summary(reports_dir, environ)
    message = build_message(summary, settings)
    if settings.host is None:
        path = write_outbox(message, reports_dir, summary.status)
        logger.info("SMTP_HOST is not set: the summary was NOT e-mailed; it is in %s "
                    "(set SMTP_HOST, NOTIFY_TO, ... to send it)", path)
        return path
    send(message, settings)
    logger.info("e-mailed '%s' to %s via %s:%d", summary.subject,
                ", ".join(settings.recipients), settings.host, settings.port)
    return None
