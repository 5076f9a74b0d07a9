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


#: Budget for a status message as it travels: gRPC sends it percent-encoded in the
#: ``grpc-message`` trailer, and a client drops the whole response once its metadata passes
#: 16 KiB ("received metadata size exceeds hard limit"), so the driver would see a transport
#: error instead of the problems. Half of that leaves room for the other trailers.
MAX_WIRE_MESSAGE = 8 * 1024


def wire_length(message: str) -> int:
    """Bytes ``message`` takes in the ``grpc-message`` trailer (printable ASCII but ``%`` as is)."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message.encode("utf-8", "replace"))


def _fit(message: str, budget: int = MAX_WIRE_MESSAGE) -> str:
    """``message`` cut (with a marker) so that its wire length stays within ``budget``.

    A lone surrogate (a pod's JSON can carry ``"\ud800"`` into a name the message quotes) is
    spelled as an escape: gRPC could not encode the status otherwise.
    """
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if wire_length(message) <= budget:
        return message
    marker = " ... (truncated)"
    keep = budget - len(marker)
    cut = []
    for char in message:
        keep -= wire_length(char)
        if keep < 0:
            break
        cut.append(char)
    return "".join(cut) + marker


class InvalidArgument(ProviderError):
    """The request's parameters are wrong; ``problems`` lists every one found.

    The message lists as many as fit the wire budget and counts the rest (``problems``
    keeps them all), so a request with hundreds of mistakes still gets a readable answer.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        prefix = "invalid mount parameters: "
        shown: list[str] = []
        # Room for the "; and N more" tail.
        budget = MAX_WIRE_MESSAGE - wire_length(prefix) - 32
        for problem in self.problems:
            cost = wire_length(problem) + 2
            if shown and cost > budget:
                break
            shown.append(problem)
            budget -= cost
        message = prefix + "; ".join(shown)
        if len(shown) < len(self.problems):
            message += f"; and {len(self.problems) - len(shown)} more"
        super().__init__(_fit(message))


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


class TargetNotMounted(ProviderError):
    """Provider mode with ``--require-mounted-target``: the target is a plain directory, not the
    driver's tmpfs, so writing would leave secrets on the node's disk."""

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
        return exc.code, _fit(exc.message)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
