"""Administrators' passwords as Argon2id hashes (argon2-cffi, with its recommended parameters)."""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2Passwords:
    """Makes and checks Argon2id hashes; parameters raised later make old hashes due for a rehash."""

    def __init__(self) -> None:
        self._hasher = argon2.PasswordHasher(type=argon2.Type.ID)

    def hash(self, password: str) -> str:
        """A new salted hash of `password`."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` is the one `password_hash` was made from."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with weaker parameters than today's."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
