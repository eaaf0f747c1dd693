"""PATCH /me: the user's own settings (the address for export mail and the opt-in)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from ...db.models import User
from ...lifecycle.quota import used_bytes
from ...notify import smtp
from ..deps import CurrentUser, RuntimeDep, SessionDep
from ..schemas import MePatch, UserOut

router = APIRouter(tags=["projects"])


@router.patch("/me", response_model=UserOut)
async def patch_me(body: MePatch, user: CurrentUser, session: SessionDep,
                   rt: RuntimeDep) -> UserOut:
    """Set where export mail goes (``email``; "" removes it) and whether to get it."""
    row = await session.get(User, user.id)
    assert row is not None  # the token was just checked against it
    if body.email is not None:
        address = body.email.strip()
        if address and not smtp.valid_address(address):
            raise HTTPException(422, f"{body.email!r} is not an email address: give one like "
                                     "name@example.org")
        row.email = address or None
        if row.email is None:
            row.notify_email = False  # no address, no mail
    if body.notify_email is not None:
        if body.notify_email and not row.email:
            raise HTTPException(422, "set an email address to get export mail: send "
                                     "{\"email\": \"you@example.org\", \"notify_email\": true}")
        if body.notify_email and not smtp.configured(rt.settings):
            raise HTTPException(409, "this server sends no mail (SAPARI_SMTP_HOST is not set): "
                                     "ask its administrator to configure SMTP")
        row.notify_email = body.notify_email
    await session.commit()
    used = await used_bytes(session, row.id, ttl=rt.settings.signed_url_ttl)
    return UserOut(id=row.id, name=row.name, used_bytes=used,
                   quota_bytes=row.quota_bytes or rt.settings.quota_bytes,
                   email=row.email, notify_email=row.notify_email)
