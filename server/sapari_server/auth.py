"""Users and bearer API tokens. Tokens are random; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db.models import ApiToken, User


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str, quota_bytes: int | None = None) -> tuple[User, str]:
    """Create a user and its first token; the token is returned once and never stored."""
    user = User(name=name, quota_bytes=quota_bytes)
    session.add(user)
    session.flush()
    return user, create_token(session, user.id)


def create_token(session: Session, user_id: str, name: str = "default") -> str:
    token = "sap_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user_id, token_hash=hash_token(token), name=name))
    return token


def find_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name, User.is_deleted.is_(False))).first()


def list_tokens(session: Session, user_id: str) -> list[ApiToken]:
    """The user's live tokens, oldest first (their hashes never leave the server)."""
    return list(session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.is_deleted.is_(False))
        .order_by(ApiToken.created_at)))


def revoke_token(session: Session, user_id: str, token_id: str) -> bool:
    """Soft-delete one of the user's tokens; False when it is not theirs or already revoked."""
    tok = session.get(ApiToken, token_id)
    if tok is None or tok.user_id != user_id or tok.is_deleted:
        return False
    tok.soft_delete()
    return True


def revoke_all_tokens(session: Session, user_id: str) -> int:
    """Soft-delete every live token of the user (they stop working at once); how many."""
    tokens = list_tokens(session, user_id)
    for tok in tokens:
        tok.soft_delete()
    return len(tokens)
