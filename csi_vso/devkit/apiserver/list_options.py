"""``resourceVersion`` / ``resourceVersionMatch`` / ``sendInitialEvents`` of list and watch (pure).

The real server's rules, worded as it words them:

- Options are checked first; a bad combination is 422 Invalid on ``ListOptions.meta.k8s.io``
  (``resourceVersionMatch`` without ``resourceVersion``, with ``continue``, an unknown
  value, ``Exact`` with version 0; ``sendInitialEvents`` on a list; on a watch,
  ``sendInitialEvents`` without ``resourceVersionMatch=NotOlderThan`` and the reverse).
- A list with ``resourceVersionMatch=Exact`` (or, for compatibility, a non-zero
  ``resourceVersion`` together with ``limit``) is served from the snapshot at that version:
  410 Expired once the version was compacted.
- Any version newer than the server's is 504 Timeout "Too large resource version" with a
  ``ResourceVersionTooLarge`` cause and ``retryAfterSeconds: 1``; the real server first
  waits up to 3 s for its cache to catch up, which here is always current, so the answer
  is immediate.
- Otherwise (``NotOlderThan``, a bare version, ``0`` or none) the current state is served.
"""

from __future__ import annotations

from dataclasses import dataclass

from csi_vso.devkit.apiserver import errors
from csi_vso.devkit.apiserver.errors import ApiError, FieldError

EXACT = "Exact"
NOT_OLDER_THAN = "NotOlderThan"
_TRUE = ("true", "1", "True", "TRUE", "t", "T")


@dataclass(frozen=True)
class ReadOptions:
    resource_version: int | None  # None: unset or "0" (any version will do)
    exact: bool  # serve the snapshot at resource_version
    send_initial_events: bool  # watch: start with the current state, end it with a bookmark


def _invalid(problems: list[FieldError]) -> ApiError:
    return errors.invalid("ListOptions", "meta.k8s.io", "", problems)


def parse(query: dict[str, str], *, watch: bool) -> ReadOptions:
    """Check the options of a list or watch request; raises the real server's errors."""
    rv_text = query.get("resourceVersion") or ""
    match = query.get("resourceVersionMatch") or ""
    send_text = query.get("sendInitialEvents")
    send = None if send_text in (None, "") else send_text in _TRUE
    continue_token = query.get("continue") or ""
    if rv_text and not rv_text.isdigit():
        raise errors.bad_request(f"invalid resource version: {rv_text!r}")
    problems: list[FieldError] = []
    if watch:
        if send is not None and match != NOT_OLDER_THAN:
            problems.append(
                errors.forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )
            )
        if match:
            if send is None:
                problems.append(
                    errors.forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    )
                )
            if match != NOT_OLDER_THAN:
                problems.append(errors.not_supported("resourceVersionMatch", match, [NOT_OLDER_THAN]))
            if continue_token:
                problems.append(
                    errors.forbidden(
                        "resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"
                    )
                )
    else:
        if match:
            if not rv_text:
                problems.append(
                    errors.forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    )
                )
            if continue_token:
                problems.append(
                    errors.forbidden(
                        "resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"
                    )
                )
            if match not in (EXACT, NOT_OLDER_THAN):
                problems.append(
                    errors.not_supported("resourceVersionMatch", match, [EXACT, NOT_OLDER_THAN, ""])
                )
            if match == EXACT and rv_text == "0":
                problems.append(
                    errors.forbidden(
                        "resourceVersionMatch",
                        'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                    )
                )
        if send is not None:
            problems.append(errors.forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if problems:
        raise _invalid(problems)
    rv = int(rv_text) if rv_text and rv_text != "0" else None
    legacy_exact = not watch and not match and rv is not None and (query.get("limit") or "0") not in ("", "0")
    return ReadOptions(rv, match == EXACT or legacy_exact, bool(send))


def too_large(requested: int, current: int) -> ApiError:
    """504: a version the server has not reached."""
    return ApiError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {requested}, current: {current}",
        {
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
    )


EXPIRED_LIST = "The resourceVersion for the provided list is too old."
