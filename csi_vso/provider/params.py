"""Parse a Mount request's strings into typed values, collecting every problem found.

The driver hands us three JSON-ish strings (``attributes``, ``secrets``, ``permission``)
whose contents are partly pod-controlled. This module only reads their *shape*: JSON or
YAML structure, strings where strings belong. What the values mean (required fields,
path rules, modes) is :mod:`csi_vso.provider.validation`'s job, so that both layers can
report all their problems in one answer. Pure: no I/O, no logging.

Problem messages name keys and positions only. They never quote a value, because the
attributes can carry service-account tokens and the driver records our message as a pod
event. For the same reason a YAML error is reported by line and column, not with the
snippet PyYAML would print.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from csi_vso.provider.limits import MAX_ATTRIBUTES_BYTES, MAX_FILES_PER_VOLUME

# Keys kubelet and the driver add to the attributes (DESIGN.md section 2).
POD_NAME = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
POD_UID = "csi.storage.k8s.io/pod.uid"
SERVICE_ACCOUNT = "csi.storage.k8s.io/serviceAccount.name"
SERVICE_ACCOUNT_TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"
EPHEMERAL = "csi.storage.k8s.io/ephemeral"
SECRET_PROVIDER_CLASS = "secretProviderClass"  # noqa: S105 - a key name

# SecretProviderClass parameters for provider: vso (DESIGN.md section 4).
OBJECTS = "objects"
WRITE_MODE = "writeMode"


#: Mode of files whose object gives none and whose request has no permission: 0644,
#: what the driver itself sends by default.
DEFAULT_PERMISSION = 0o644


@dataclass(frozen=True)
class RawObject:
    """One entry of ``objects`` as written: each field a string, or None when absent."""

    index: int
    fields: Mapping[str, str]
    # Keys present but not strings (so validation can say which), and keys we do not know.
    non_strings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodClaim:
    """Who kubelet says the pod is. Unverified until checked against the API."""

    name: str
    namespace: str
    uid: str
    service_account: str
    # audience -> token, from csi.storage.k8s.io/serviceAccount.tokens.
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ParsedRequest:
    """A Mount request with its strings decoded; ``problems`` lists what could not be read."""

    pod: PodClaim
    objects: tuple[RawObject, ...]
    write_mode: str | None
    permission: int | None
    target_path: str
    secret_provider_class: str
    problems: tuple[str, ...]
    # False when ``attributes`` itself could not be read: nothing in it is worth checking.
    attributes_readable: bool = True


#: libyaml when PyYAML has it: the pure-Python loader took 24 s of CPU for a 1 MiB ``objects``.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Collections deep enough for any real ``objects`` (a list of mappings of strings is depth 2).
_MAX_YAML_DEPTH = 16


class _Refused(Exception):
    """``objects`` YAML refused by the pre-scan; the message says why (no content)."""


def _prescan_yaml(text: str) -> None:
    """Walk the YAML's parse events (an iterative parser, no recursion, no node built) and refuse
    aliases ("billion laughs": a few nested aliases would make one Mount expand gigabytes),
    nesting deeper than any real ``objects`` and more entries than a volume may have, before
    anything is constructed. Stops at the first problem, so a hostile 1 MiB blob costs little."""
    depth = 0
    entries = 0
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            mark: Any = event.start_mark  # libyaml's Mark has the same line and column
            raise yaml.MarkedYAMLError(problem="YAML aliases are not allowed", problem_mark=mark)
        if depth == 1 and isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            entries += 1
            if entries > MAX_FILES_PER_VOLUME:
                raise _Refused(
                    f"objects has more than {MAX_FILES_PER_VOLUME} entries, "
                    f"over the limit of {MAX_FILES_PER_VOLUME} files per volume"
                )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > _MAX_YAML_DEPTH:
                raise _Refused("objects is nested too deeply")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _parse_attributes(text: str, problems: list[str]) -> dict[str, str] | None:
    """The attributes as a dict; None when the blob itself is unreadable."""
    if len(text) > MAX_ATTRIBUTES_BYTES:
        problems.append(f"attributes are larger than {MAX_ATTRIBUTES_BYTES} bytes")
        return None
    try:
        value = json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        problems.append(f"attributes is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
        return None
    except RecursionError:
        # Pod-controlled nesting ("[[[[..."): an answer, not an INTERNAL error with a deep traceback.
        problems.append("attributes are nested too deeply")
        return None
    if not isinstance(value, dict):
        problems.append("attributes must be a JSON object of strings")
        return None
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[key] = item
        else:
            problems.append(f"attributes[{key!r}] must be a string")
    return out


def _parse_tokens(text: str | None, problems: list[str]) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        problems.append(f"{SERVICE_ACCOUNT_TOKENS} is not valid JSON")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{SERVICE_ACCOUNT_TOKENS} must be a JSON object keyed by audience")
        return {}
    tokens: dict[str, str] = {}
    for audience, entry in value.items():
        token = entry.get("token") if isinstance(entry, dict) else None
        if isinstance(token, str) and token:
            tokens[str(audience)] = token
        else:
            problems.append(f"{SERVICE_ACCOUNT_TOKENS}[{audience!r}] has no token")
    return tokens


def _load_list(text: str, problems: list[str]) -> list[Any] | None:
    """Read ``objects``: a JSON list, else YAML (of which JSON is nearly a subset)."""
    try:
        value: Any = json.loads(text)
    except RecursionError:
        problems.append("objects is nested too deeply")
        return None
    except json.JSONDecodeError:
        try:
            _prescan_yaml(text)
            value = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - SafeLoader or its libyaml twin
        except _Refused as exc:
            problems.append(str(exc))
            return None
        except RecursionError:
            problems.append("objects is nested too deeply")
            return None
        except yaml.MarkedYAMLError as exc:
            if "nesting depth" in (exc.problem or ""):  # libyaml's own cap, below ours for lists
                problems.append("objects is nested too deeply")
                return None
            mark = exc.problem_mark
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problems.append(f"objects is neither JSON nor YAML ({exc.problem or 'syntax error'}{where})")
            return None
        except yaml.YAMLError:
            problems.append("objects is neither JSON nor YAML")
            return None
    if not isinstance(value, list):
        problems.append(f"objects must be a list, not {_kind(value)}")
        return None
    if len(value) > MAX_FILES_PER_VOLUME:
        # Refused before anything is built per entry: each costs a file, a page and a version.
        problems.append(
            f"objects has {len(value)} entries, over the limit of {MAX_FILES_PER_VOLUME} files per volume"
        )
        return None
    return value


def _kind(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _parse_objects(text: str | None, problems: list[str]) -> tuple[RawObject, ...]:
    if text is None:
        problems.append("objects is missing")
        return ()
    items = _load_list(text, problems)
    if items is None:
        return ()
    objects: list[RawObject] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"objects[{index}] must be a mapping, not {_kind(item)}")
            continue
        strings = {str(k): v for k, v in item.items() if isinstance(v, str)}
        others = tuple(sorted(str(k) for k, v in item.items() if not isinstance(v, str)))
        objects.append(RawObject(index=index, fields=strings, non_strings=others))
    return tuple(objects)


def _parse_permission(text: str, problems: list[str]) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text.strip(), 10)
    except ValueError:
        problems.append("permission must be a decimal file mode such as 420 (0644)")
        return None


def _parse_secrets(text: str, problems: list[str]) -> None:
    """nodePublishSecretRef data: unused by this provider, but it must at least be JSON."""
    if not text.strip() or text.strip() == "null":
        return
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        problems.append("secrets is not valid JSON")
        return
    if value is not None and not isinstance(value, dict):
        problems.append("secrets must be a JSON object or null")


def parse_request(*, attributes: str, secrets: str, target_path: str, permission: str) -> ParsedRequest:
    """Decode the request's strings; never raises, problems are collected instead."""
    problems: list[str] = []
    parsed = _parse_attributes(attributes, problems)
    readable = parsed is not None
    attrs = parsed or {}
    _parse_secrets(secrets, problems)
    pod = PodClaim(
        name=attrs.get(POD_NAME, ""),
        namespace=attrs.get(POD_NAMESPACE, ""),
        uid=attrs.get(POD_UID, ""),
        service_account=attrs.get(SERVICE_ACCOUNT, ""),
        tokens=_parse_tokens(attrs.get(SERVICE_ACCOUNT_TOKENS), problems),
    )
    # A malformed attributes blob already said everything; don't add "objects is missing".
    objects = _parse_objects(attrs.get(OBJECTS), problems) if readable else ()
    return ParsedRequest(
        pod=pod,
        objects=objects,
        write_mode=attrs.get(WRITE_MODE),
        permission=_parse_permission(permission, problems),
        target_path=target_path,
        secret_provider_class=attrs.get(SECRET_PROVIDER_CLASS, ""),
        problems=tuple(problems),
        attributes_readable=readable,
    )
