"""Typed Mount failures and the one table that maps them to gRPC status codes.

Every module below the servicer raises one of these; :func:`status_for` is the only
place that turns an exception into a code and a message. Messages are built from names,
paths and counts only — never from secret values, tokens, ``attributes`` or ``secrets``
— so they are safe to return to the driver (which records them as pod events) and to
log. Anything else that escapes is reported as INTERNAL with a generic message, because
its text is not under our control and could carry content.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc


class ProviderError(Exception):
    """Base of every expected Mount failure; ``code`` is its gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ProviderError):
    """The request's parameters are wrong; ``problems`` lists every one found."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid mount parameters: " + "; ".join(self.problems))


class PermissionDenied(ProviderError):
    """Policy or pod identity forbids the mount."""

    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(ProviderError):
    """No such protected Secret or key (identical for an unprotected Secret)."""

    code = grpc.StatusCode.NOT_FOUND


class Unavailable(ProviderError):
    """Temporarily unable to answer: cache not synced, API server unreachable."""

    code = grpc.StatusCode.UNAVAILABLE


class TargetUnsafe(ProviderError):
    """The volume holds something the writer did not create where it must write (a planted symlink)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class WriteFailed(ProviderError):
    """Writing the files into the volume failed for a reason outside the request (disk, kernel)."""

    code = grpc.StatusCode.INTERNAL


class ResourceExhausted(ProviderError):
    """The rendered files are larger than the driver can receive."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


INTERNAL_MESSAGE = "internal error in the csi-vso provider (see its log)"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and the message the driver sees for ``exc``."""
    if isinstance(exc, ProviderError):
        return exc.code, exc.message
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
