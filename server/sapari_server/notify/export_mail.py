"""Mail to users who opted in, when one of their exports completes or fails.

The mail never rides inside the export's fenced completion: the render handler (or the
export's failure hook) first commits, then a light ``send_email`` job is created and queued.
Sending is that job's whole work; when it fails (SMTP down, address refused) the failure is
logged and recorded on the send_email job only: the export keeps its result.
"""

from __future__ import annotations

import logging
import smtplib
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from ..db.models import Export, Project, User
from ..queue.jobs import CANCELLED_REASON, FailHook, Handler, JobContext, JobFailure
from . import smtp

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)
KIND = "send_email"


def queue_export_mail(rt: Runtime, export_id: str) -> str | None:
    """Create and queue the send_email job of an export, if its owner wants mail.

    Called after the export's outcome committed. Never raises: a mail problem must not turn
    into an export problem. Returns the send_email job id, or None when nothing is sent.
    """
    from ..queue.submit import new_job
    from ..queue.tasks import enqueue

    try:
        if not smtp.configured(rt.settings):
            return None
        with rt.sync_session() as s, s.begin():
            exp = s.get(Export, export_id)
            user = s.get(User, exp.user_id) if exp is not None else None
            if exp is None or user is None or not (user.notify_email and user.email):
                return None
            job = new_job(s, user_id=user.id, kind=KIND, target_id=exp.id,
                          project_id=exp.project_id, priority="interactive")
            job_id, priority = job.id, job.priority
        enqueue(rt, KIND, job_id, priority)
        return job_id
    except Exception:
        log.exception("could not queue the mail about export %s", export_id)
        return None


def with_export_mail(handler: Handler) -> Handler:
    """The render handler, then (once its completion committed) the mail."""

    def run(ctx: JobContext) -> dict[str, Any] | None:
        result = handler(ctx)
        if ctx.committed:
            queue_export_mail(ctx.rt, ctx.target_id)
        return result

    return run


def with_failure_mail(on_fail: FailHook) -> FailHook:
    """The export's failure hook, plus the mail once the failure's transaction committed.

    A user's own cancel sends nothing: they know.
    """

    def hook(s: Any, ctx: JobContext, reason: str) -> None:
        on_fail(s, ctx, reason)
        if reason == CANCELLED_REASON or not isinstance(s, Session):
            return
        rt, export_id = ctx.rt, ctx.target_id
        event.listen(s, "after_commit", lambda _s: queue_export_mail(rt, export_id), once=True)

    return hook


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024**2:.1f} MiB"


def compose(rt: Runtime, exp: Export, project: Project | None) -> tuple[str, str]:
    """(subject, body) of the mail about ``exp``."""
    name = project.name if project is not None else exp.project_id
    if exp.status == "succeeded" and exp.object_key:
        ttl = rt.settings.signed_url_ttl
        container = exp.settings.get("container", "mp4")
        url = rt.storage.presign_get(exp.object_key, expires_in=ttl,
                                     filename=f"{name}-cut.{container}")
        subject = f"sapari-nb: the export of {name} is ready"
        body = (f"The export {exp.id} of your project {name!r} is ready.\n\n"
                f"Duration: {exp.duration or 0:.1f} s, size: {_mib(exp.size)}.\n\n"
                f"Download it (this link works for {ttl // 60} minutes):\n{url}\n\n"
                f"Later, get a fresh link with: sapari-nb download {exp.id}\n")
    else:
        subject = f"sapari-nb: the export of {name} failed"
        body = (f"The export {exp.id} of your project {name!r} failed:\n\n"
                f"{exp.error or 'no reason was recorded'}\n\n"
                "Fix what it names and export again.\n")
    return subject, body


def send_email(ctx: JobContext) -> None:
    """The send_email job: one mail about the export ``ctx.target_id``."""
    rt = ctx.rt
    with ctx.session() as s:
        exp = s.get(Export, ctx.target_id)
        user = s.get(User, ctx.user_id)
        if exp is None or user is None or not (user.notify_email and user.email):
            log.info("export %s: its owner no longer wants mail; nothing sent", ctx.target_id)
            return
        to = user.email
        subject, body = compose(rt, exp, s.get(Project, exp.project_id))
    msg = smtp.build_message(rt.settings, to, subject, body)
    try:
        smtp.send(rt.settings, msg)
    except (smtplib.SMTPException, OSError) as e:
        where = f"{rt.settings.smtp_host}:{rt.settings.smtp_port}"
        raise JobFailure(f"could not send the mail about export {ctx.target_id} to {to} "
                         f"through {where}: {type(e).__name__}: {e}") from None
    log.info("mailed %s about export %s (%s)", to, ctx.target_id, subject)


def send_email_failed(s: Any, ctx: JobContext, reason: str) -> None:
    """A mail that could not go out is logged; the export it is about is left as it is."""
    log.warning("export mail not sent (job %s): %s", ctx.job_id, reason)
