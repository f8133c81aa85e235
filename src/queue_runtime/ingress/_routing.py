"""Which session an event belongs to: GitHub's subjects, JSON pointers, and a size that fits."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["fit_session_id", "github_session_id", "resolve_pointer"]

_MAX_SESSION_ID = 128
_ABSENT = object()


def github_session_id(event: str, payload: Any) -> str:
    """The subject GitHub events must be ordered by.

    ``owner/repo#<number>`` for pull requests, issues and discussions and everything on them
    (comments, reviews, review threads); ``owner/repo@<ref>`` for pushes and for branches and
    tags created or deleted (``refs/heads/...``, ``refs/tags/...``); else the repository, the
    organization, the installation, and last the event name.
    """
    data: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    repository = _field(data, "repository", "full_name")
    if repository:
        for subject in ("pull_request", "issue", "discussion"):
            number = _field(data, subject, "number")
            if isinstance(number, int):
                return f"{repository}#{number}"
        ref = data.get("ref")
        if event == "push" and isinstance(ref, str) and ref:
            return f"{repository}@{ref}"
        if event in ("create", "delete") and isinstance(ref, str) and ref:
            kind = {"branch": "refs/heads/", "tag": "refs/tags/"}.get(str(data.get("ref_type")), "")
            return f"{repository}@{ref if ref.startswith('refs/') else kind + ref}"
        return str(repository)
    organization = _field(data, "organization", "login")
    if organization:
        return str(organization)
    installation = _field(data, "installation", "id")
    if installation is not None:
        return f"installation/{installation}"
    return f"github/{event}"


def _field(data: Mapping[str, Any], key: str, name: str) -> Any:
    inner = data.get(key)
    return inner.get(name) if isinstance(inner, Mapping) else None


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at RFC 6901 JSON ``pointer`` in ``document``, or ``None`` where there is none."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/': {pointer!r}")
    current: Any = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping):
            current = current.get(token, _ABSENT)
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return None
        if current is _ABSENT:
            return None
    return current


def fit_session_id(value: str) -> str:
    """``value`` if it is a valid session id, else a stable id of at most 128 printable
    characters made from it (a long subject keeps its head and gains a digest)."""
    if 0 < len(value) <= _MAX_SESSION_ID and value.isprintable():
        return value
    printable = "".join(c if c.isprintable() else "?" for c in value)
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{printable[: _MAX_SESSION_ID - 17]}~{digest}"
