"""Sending one message through the configured SMTP server (stdlib smtplib, no extra package)."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ..settings import Settings

# Deliberately plain: one @, no spaces, no angle brackets or quotes, and never a line break
# (a CR/LF in a header is how mail headers get injected).
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:\\]+@[^@\s<>\"(),;:\\]+\.[^@\s<>\"(),;:\\]+$|"
                      r"^[^@\s<>\"(),;:\\]+@localhost$")


def valid_address(address: str) -> bool:
    return len(address) <= 320 and bool(_ADDRESS.match(address))


def configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def build_message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.smtp_sender.rpartition("@")[2] or None)
    msg.set_content(body)
    return msg


def send(settings: Settings, msg: EmailMessage) -> None:
    """Deliver ``msg``; raises smtplib.SMTPException or OSError (refused, unreachable, TLS)."""
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.smtp_timeout
    context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
    smtp: smtplib.SMTP
    if settings.smtp_tls == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if settings.smtp_tls == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(msg)
