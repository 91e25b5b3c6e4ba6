"""Passwords, signed session tokens, CSRF tokens and the failed-login limiter.

Why these choices:
- argon2id via argon2-cffi (the reference binding, maintained, memory-hard) rather than our own
  key stretching; an unknown user is verified against a dummy hash, so timing does not reveal
  which names exist.
- Sessions are stateless signed tokens (HMAC-SHA256 over user, issue time and a random nonce):
  several fleet instances sharing one secret accept each other's sessions, and a restart logs
  nobody out. The role is NOT in the token: every request looks the user up in the current
  configuration, so removing a user or lowering a role takes effect at once.
- The CSRF token is derived from the session nonce (HMAC), so it needs no server state either;
  before login a separate signed pre-session nonce plays that part for the login form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password: used to spend the same time on unknown users")


def hash_password(password: str) -> str:
    """An argon2id PHC string for the ``password_hash`` key of a user."""
    if not password:
        raise ValueError("empty password")
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True only for the right password; spends a full verification even without a hash."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def same_token(a: str, b: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input (cookies are attacker data)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class Session:
    user: str
    issued_at: int
    nonce: str


class Signer:
    """Signs and checks session tokens and derives CSRF tokens from one secret."""

    def __init__(self, secret: bytes, max_age_s: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("session secret must be at least 32 bytes")
        self._key = hashlib.sha256(b"pumpgw-fleet-web\x00" + secret).digest()
        self._max_age_s = max_age_s
        self._clock = clock

    def _mac(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\x00{payload}".encode(), hashlib.sha256).digest())

    def issue(self, user: str) -> str:
        payload = _b64(f"{user}\x00{int(self._clock())}\x00{secrets.token_urlsafe(16)}".encode())
        return f"{payload}.{self._mac('session', payload)}"

    def check(self, token: str | None) -> Session | None:
        """The session a token stands for, or None if forged, malformed or expired."""
        if not token or token.count(".") != 1:
            return None
        payload, mac = token.split(".")
        if not same_token(mac, self._mac("session", payload)):
            return None
        try:
            user, issued, nonce = _unb64(payload).decode().split("\x00")
            issued_at = int(issued)
        except (ValueError, UnicodeDecodeError):
            return None
        if not 0 <= self._clock() - issued_at <= self._max_age_s:
            return None
        return Session(user, issued_at, nonce)

    def pre_session(self) -> str:
        """A signed random nonce for the login form's CSRF check (no session yet)."""
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._mac('pre', nonce)}"

    def check_pre_session(self, token: str | None) -> str | None:
        if not token or token.count(".") != 1:
            return None
        nonce, mac = token.split(".")
        return nonce if same_token(mac, self._mac("pre", nonce)) else None

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str | None, submitted: str | None) -> bool:
        if not nonce or not submitted:
            return False
        return same_token(self.csrf_token(nonce), submitted)


@dataclass
class LoginLimiter:
    """Counts failed logins per user name and per client address in a sliding window.

    Both keys: one client guessing many names and many clients guessing one name are both
    stopped. Memory is bounded by pruning keys whose window has passed.
    """

    max_failures: int
    window_s: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        times = self._failures.get(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def locked(self, user: str, client: str) -> bool:
        return any(len(self._recent(k)) >= self.max_failures for k in (f"u:{user}", f"c:{client}"))

    def failed(self, user: str, client: str) -> None:
        now = self.clock()
        for key in (f"u:{user}", f"c:{client}"):
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 10_000:
            for key in list(self._failures):
                self._recent(key)

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"u:{user}", None)

    def clear(self) -> int:
        """Lift every lock-out (admin action); returns how many keys were held."""
        count = len(self._failures)
        self._failures.clear()
        return count

    def held(self) -> list[tuple[str, int]]:
        return sorted((k, len(self._recent(k))) for k in list(self._failures) if self._failures.get(k))
