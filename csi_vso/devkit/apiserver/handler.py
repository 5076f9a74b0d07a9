"""HTTP: one request -> authenticate -> authorize (RBAC) -> route -> operation -> JSON or a watch stream.

Responses are written in one ``write`` (headers and body together; ``TCP_NODELAY`` is set
on every connection) because small split writes on a keep-alive connection stall behind
delayed ACKs. Watches stream ``{"type": ..., "object": ...}`` lines with chunked transfer
encoding; an expired resourceVersion is reported as the real server does, inside the stream
as an ERROR event carrying a 410 ``Status`` (the kubernetes client turns it into
``ApiException(410)``). A watch ends on ``timeoutSeconds``, on server stop, or when the
client goes away (noticed within a second without writing anything to the stream).
"""

from __future__ import annotations

import json
import logging
import queue
import select
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from csi_vso.devkit.apiserver import errors, escalation, list_options, rbac
from csi_vso.devkit.apiserver.deployments import serve_scale
from csi_vso.devkit.apiserver.errors import ApiError
from csi_vso.devkit.apiserver.operations import DeleteOptions
from csi_vso.devkit.apiserver.rbac import User
from csi_vso.devkit.apiserver.requestinfo import RequestInfo, accepts, request_info
from csi_vso.devkit.apiserver.resources import ResourceType
from csi_vso.devkit.apiserver.routing import Route, route, under_served_version
from csi_vso.devkit.apiserver.selectors import SelectorError, parse_field_selector, parse_label_selector
from csi_vso.devkit.apiserver.store import BOOKMARK, INITIAL_EVENTS_END, Expired, Stored, WatchFilter, encode

if TYPE_CHECKING:
    from csi_vso.devkit.apiserver.server import App

log = logging.getLogger(__name__)

JWKS_MEDIA_TYPE = "application/jwk-set+json"
_MAX_WATCH_SECONDS = 1800


def _next_bookmark(now: float, deadline: float, interval: float) -> float:
    """When to send the next bookmark: every ``interval``, and once 2 s before the watch
    deadline (as the real watch cache does, so a client can resume where it ended)."""
    before_deadline = deadline - 2.0
    upcoming = now + interval
    return min(upcoming, before_deadline) if before_deadline > now else upcoming


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "csi-vso-devkit-apiserver"
    app: App  # set on the subclass the server creates

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.app.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.app.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self, raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"the body of the request could not be decoded as JSON: {exc}") from None

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        phrase = HTTPStatus(code).phrase
        head = (
            f"HTTP/1.1 {code} {phrase}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-cache, private\r\n"
            f"Date: {self.date_time_string()}\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)

    def _send_negotiated(self, body: bytes, content_type: str) -> None:
        """The OIDC documents are served in one media type each; another ``Accept`` gets 406."""
        if not accepts(self.headers.get("Accept"), content_type):
            self._send(406, b"406: Not Acceptable", "text/plain; charset=utf-8")
            return
        self._send(200, body, content_type)

    def _send_obj(self, code: int, obj: Any) -> None:
        self._send(code, encode(obj))

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)  # clients escape ':' in names such as "system:auth-delegator"
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        raw = self._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        try:
            target = route(path, self.app.registry)
            user = self.app.auth.authenticate(self.headers.get("Authorization"))
            if user is None:
                raise errors.unauthorized()
            self._authorize(user, request_info(method, path, query))
            self._serve(method, target, query, raw, user)
        except ApiError as exc:
            if exc.plain_text:
                self._send(exc.code, exc.message.encode() + b"\n", "text/plain; charset=utf-8")
            else:
                self._send_obj(exc.code, exc.status())
        except SelectorError as exc:
            self._send_obj(400, errors.bad_request(str(exc)).status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("internal error serving request", extra={"method": method, "path": split.path})
            self._send_obj(
                500, ApiError(500, "InternalError", f"Internal error occurred: {type(exc).__name__}").status()
            )

    def _authorize(self, user: User, info: RequestInfo) -> None:
        """RBAC, before routing, as the real server: a refused caller learns nothing of what exists."""
        decision = rbac.authorize(self.app.policy, user, info)
        if decision.allowed:
            return
        why = rbac.forbidden_message(user, info) + (f": {decision.reason}" if decision.reason else "")
        resource = info.resource if info.resource_request else ""
        raise errors.forbidden_by_authorizer(info.api_group, resource, info.name, why)

    def _serve(self, method: str, target: Route, query: dict[str, str], raw: bytes, user: User) -> None:
        app = self.app
        if target.kind == "object":
            assert target.resource is not None
            self._serve_object(method, target, target.resource, query, raw, user)
            return
        if method != "GET":
            raise errors.method_not_allowed(method)
        if target.kind == "health":
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif target.kind == "version":
            self._send_obj(200, app.version_info())
        elif target.kind == "openid":
            self._send_negotiated(encode(app.openid_configuration()), "application/json")
        elif target.kind == "jwks":
            self._send_negotiated(encode(app.issuer.jwks()), JWKS_MEDIA_TYPE)
        elif target.kind == "api":
            self._send_obj(200, app.registry.api_versions())
        elif target.kind == "apis":
            self._send_obj(200, app.registry.api_group_list())
        elif target.kind == "group":
            group = app.registry.api_group(target.group)
            if group is None:
                raise errors.path_not_found(self.path, served=False)
            self._send_obj(200, {"kind": "APIGroup", "apiVersion": "v1", **group})
        elif target.kind == "resources":
            resources = app.registry.resource_list(target.group, target.version)
            if resources is None:
                raise errors.path_not_found(self.path, served=False)
            self._send_obj(200, resources)
        else:
            raise errors.path_not_found(self.path, served=under_served_version(self.path, app.registry))

    # ---------------------------------------------------------------- objects

    def _serve_object(
        self, method: str, target: Route, rt: ResourceType, query: dict[str, str], raw: bytes, user: User
    ) -> None:
        ops = self.app.ops
        ns = target.namespace or ""
        name = target.name
        sub = target.subresource
        dry_run = bool(query.get("dryRun"))
        if rt.virtual:
            if method != "POST" or name is not None:
                raise errors.method_not_allowed(method)
            self._send_obj(201, self.app.review(rt, ns, self._json_body(raw), user))
            return
        if rt.namespaced and target.namespace is None and (method == "POST" or name is not None):
            raise errors.path_not_found(self.path)
        if sub == "token":
            if method != "POST":
                raise errors.method_not_allowed(method)
            assert name is not None
            self._send_obj(201, self.app.auth.token_request(ns, name, self._json_body(raw)))
            return
        if sub == "scale":
            assert name is not None
            content_type = self.headers.get("Content-Type") or ""
            self._send_obj(200, serve_scale(ops, rt, ns, name, method, raw, content_type, dry_run))
            return
        if method in ("POST", "PUT", "PATCH") and sub is None:
            self._check_escalation(method, rt, ns, name, raw, user)
        if name is None:
            if method == "GET":
                labels = parse_label_selector(query.get("labelSelector"))
                fields = parse_field_selector(query.get("fieldSelector"), rt.field_selectors)
                if query.get("watch") in ("true", "1"):
                    self._watch(rt, target.namespace, labels, fields, query)
                else:
                    self._list(rt, target.namespace if rt.namespaced else None, labels, fields, query)
            elif method == "POST":
                self._send_raw_obj(201, ops.create(rt, ns, self._json_body(raw), dry_run), rt)
            elif method == "DELETE":
                labels = parse_label_selector(query.get("labelSelector"))
                fields = parse_field_selector(query.get("fieldSelector"), rt.field_selectors)
                options = DeleteOptions.parse(self._json_body(raw), query)
                deleted = ops.delete_collection(rt, target.namespace, labels, fields, options)
                self._send_list(rt, deleted, ops.store.rv, "", None)
            else:
                raise errors.method_not_allowed(method)
            return
        if method == "GET":
            self._send_raw_obj(200, ops.get(rt, ns, name), rt)
        elif method == "PUT":
            self._send_raw_obj(200, ops.update(rt, ns, name, self._json_body(raw), sub, dry_run), rt)
        elif method == "PATCH":
            content_type = self.headers.get("Content-Type") or ""
            stored, created = ops.patch_or_apply(rt, ns, name, content_type, raw, sub, dry_run)
            self._send_raw_obj(201 if created else 200, stored, rt)
        elif method == "DELETE" and sub is None:
            options = DeleteOptions.parse(self._json_body(raw), query)
            stored, deleted_now = ops.delete(rt, ns, name, options)
            if deleted_now and not rt.return_deleted_object:
                details: dict[str, Any] = {"name": name, "kind": rt.plural, "uid": stored.meta.get("uid")}
                if rt.group:
                    details["group"] = rt.group
                self._send_obj(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": details,
                    },
                )
            else:
                self._send_raw_obj(200, stored, rt)
        else:
            raise errors.method_not_allowed(method)

    def _check_escalation(
        self, method: str, rt: ResourceType, ns: str, name: str | None, raw: bytes, user: User
    ) -> None:
        """Writes of RBAC objects may not grant more than the writer holds (see ``escalation``):
        the write is tried as a dry run and its result checked before it is done for real."""
        if rt.group != escalation.GROUP or rbac.MASTERS in user.groups:
            return
        if rt.plural not in escalation.ROLE_KINDS and rt.plural not in escalation.BINDING_KINDS:
            return
        ops = self.app.ops
        if method == "POST":
            new = ops.create(rt, ns, self._json_body(raw), True)
        elif method == "PUT" and name is not None:
            new = ops.update(rt, ns, name, self._json_body(raw), None, True)
        elif method == "PATCH" and name is not None:
            new = ops.patch(rt, ns, name, self.headers.get("Content-Type") or "", raw, None, True)
        else:
            return
        new_name = str(new.meta.get("name") or "")
        old = ops.store.get(rt.storage_key, ns, new_name)
        why = escalation.check(self.app.policy, user, rt.plural, ns, new.obj, old.obj if old else None)
        if why is not None:
            raise errors.forbidden_request(rt.plural, rt.group, new_name, why)

    def _send_raw_obj(self, code: int, stored: Stored, rt: ResourceType) -> None:
        self._send(code, stored.raw(rt.api_version))

    def _list(
        self, rt: ResourceType, namespace: str | None, labels: Any, fields: Any, query: dict[str, str]
    ) -> None:
        read = list_options.parse(query, watch=False)
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise errors.bad_request("limit must be an integer") from None
        result = self.app.ops.list_objects(
            rt, namespace, labels, fields, limit, query.get("continue") or "", read
        )
        self._send_list(rt, result.items, result.resource_version, result.continue_token, result.remaining)

    def _send_list(
        self, rt: ResourceType, items: list[Stored], rv: int, token: str, remaining: int | None
    ) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        head = encode({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
        # Custom resources keep kind/apiVersion in list items (unstructured); built-in kinds do not.
        encoded = (s.raw(rt.api_version) if rt.crd_name else s.raw_list_item() for s in items)
        body = head[:-1] + b',"items":[' + b",".join(encoded) + b"]}"
        self._send(200, body)

    # ------------------------------------------------------------------ watch

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _client_gone(self) -> bool:
        """A watch client sends nothing after its request: anything readable is EOF or a TLS alert."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _watch(
        self, rt: ResourceType, namespace: str | None, labels: Any, fields: Any, query: dict[str, str]
    ) -> None:
        app = self.app
        read = list_options.parse(query, watch=True)
        # sendInitialEvents: the current state (at least as new as the version asked for),
        # then a bookmark marking its end. The real server also defaults a watch without a
        # version to it (WatchList), which clients only notice through that bookmark.
        initial = read.send_initial_events or (
            "sendInitialEvents" not in query
            and not query.get("resourceVersionMatch")
            and read.resource_version is None
        )
        if (
            read.send_initial_events
            and read.resource_version is not None
            and read.resource_version > app.store.rv
        ):
            raise list_options.too_large(read.resource_version, app.store.rv)
        if initial:
            since = None
        else:  # sendInitialEvents=false without a version: from now on
            since = read.resource_version if read.resource_version is not None else app.store.rv
        try:
            timeout = float(query.get("timeoutSeconds") or _MAX_WATCH_SECONDS)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be an integer") from None
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        flt = WatchFilter(rt.storage_key, namespace if rt.namespaced else None, labels, fields)
        self.wfile.write(
            (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                f"Cache-Control: no-cache, private\r\nDate: {self.date_time_string()}\r\n\r\n"
            ).encode()
        )
        self.close_connection = True
        try:
            watcher = app.store.watch(flt, since, initial_end=initial and bookmarks)
        except Expired as exc:
            status = errors.gone(str(exc)).status()
            self._write_chunk(encode({"type": "ERROR", "object": status}) + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        api_version = rt.api_version
        deadline = time.monotonic() + timeout
        next_bookmark = _next_bookmark(time.monotonic(), deadline, app.bookmark_interval)
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                try:
                    item = watcher.queue.get(timeout=min(deadline - now, 1.0))
                except queue.Empty:
                    if self._client_gone():
                        return
                    if bookmarks and time.monotonic() >= next_bookmark:
                        app.store.bookmark(watcher)
                        next_bookmark = _next_bookmark(time.monotonic(), deadline, app.bookmark_interval)
                    continue
                if item is None:
                    break
                parts: list[bytes] = []
                while item is not None:
                    kind, payload = item
                    if kind in (BOOKMARK, INITIAL_EVENTS_END):
                        meta: dict[str, Any] = {"resourceVersion": str(payload), "creationTimestamp": None}
                        if kind == INITIAL_EVENTS_END:
                            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
                        obj = {"kind": rt.kind, "apiVersion": api_version, "metadata": meta}
                        parts.append(b'{"type":"BOOKMARK","object":' + encode(obj) + b"}\n")
                    else:
                        parts.append(
                            b'{"type":"' + kind.encode() + b'","object":' + payload.raw(api_version) + b"}\n"
                        )
                    try:
                        item = watcher.queue.get_nowait()
                    except queue.Empty:
                        break
                self._write_chunk(b"".join(parts))
                if item is None:
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        finally:
            app.store.unwatch(watcher)
