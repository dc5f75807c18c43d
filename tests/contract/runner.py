"""Running a contract probe against a target, and what came back as a comparable transcript.

A probe (see probes.py) is data: steps of (method, path template, body template), optional clean-up
steps, and whether the webhooks it causes are part of the answer. The same probe runs against
the emulator and against a live Plane; each run becomes a *transcript*: every recorded step's
status, content type and body, and the webhook deliveries, normalised so that two servers'
transcripts are equal exactly when they behaved alike (ids, timestamps, sequence numbers and the
names of the workspace's own users and project replaced by placeholders).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Protocol

from plane_live import Answer, PacedHttp
from webhook_capture import Received

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
#: The name fields of a user object, each replaced by the placeholder of the user it belongs to.
USER_NAME_KEYS = ("email", "display_name", "first_name", "last_name")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d(:?\d\d)?)?$")
#: Values that differ between two runs of the same behaviour, by key.
VOLATILE_KEYS = {
    "sequence_id": "<sequence>",
    # A new work item or label goes after the largest sort order the project ever had,
    # deleted rows included: it grows with every run on a live server.
    "sort_order": "<sort_order>",
    # Plane picks a random icon and colour for a new project.
    "logo_props": "<logo>",
}
#: Response headers that are part of the contract (the others are server plumbing).
RECORDED_HEADERS = ("Content-Type", "Allow", "Location")
#: Webhook request headers whose value changes on every delivery or with the body.
VOLATILE_WEBHOOK_HEADERS = {
    "host": "<host>", "content-length": "<length>", "x-plane-delivery": "<delivery>",
    "x-plane-signature": "<signature>",
}  # fmt: skip


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    key: str | None = "default"  # "default", None (no key) or a literal key value
    save: str | None = None
    record: bool = True

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.body is not None:
            out["body"] = self.body
        if self.raw is not None:
            out["raw"] = self.raw.decode("utf-8", "replace")
        if self.key != "default":
            out["key"] = "none" if self.key is None else "invalid"
        return out


@dataclass(frozen=True)
class Probe:
    name: str
    about: str
    steps: tuple[Step, ...]
    cleanup: tuple[Step, ...] = ()
    webhooks: bool = False


class Target(Protocol):
    """Where a probe runs: the emulator (fresh per probe) or a live Plane (one per session)."""

    kind: str
    http: PacedHttp
    slug: str
    project_id: str
    workspace_id: str
    me: dict[str, Any]
    member: dict[str, Any]
    webhook_secret: str | None
    #: "work-items", or "issues" on a Plane without those routes (up to 1.0): the probes are
    #: written with work-items paths and sent with the target's own.
    family: str

    def webhooks_begin(self) -> None: ...

    def webhooks_collect(self) -> list[Received]: ...

    def webhooks_settle(self) -> None: ...


class ProbeError(AssertionError):
    pass


@dataclass
class Context:
    target: Target
    uniq: str = field(default_factory=lambda: "Q" + "".join(
        secrets.choice(string.ascii_uppercase) for _ in range(4)))
    saved: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        t = self.target
        return {
            "ws": f"/api/v1/workspaces/{t.slug}", "slug": t.slug, "project": t.project_id,
            "UNIQ": self.uniq, "uniq": self.uniq.lower(), "me": t.me["id"],
            "member": t.member["id"], **self.saved,
        }  # fmt: skip

    def fill(self, template: Any) -> Any:
        if isinstance(template, dict):
            return {k: self.fill(v) for k, v in template.items()}
        if isinstance(template, list):
            return [self.fill(v) for v in template]
        if not isinstance(template, str):
            return template
        whole = re.fullmatch(r"\{([^{}]+)\}", template)
        if whole:
            return self.lookup(whole.group(1))
        text = re.sub(r"\{([^{}]+)\}", lambda m: str(self.lookup(m.group(1))), template)
        if self.target.family != "work-items" and text.startswith("/api/v1/"):
            text = text.replace("/work-items/", f"/{self.target.family}/")
        return text

    def lookup(self, ref: str) -> Any:
        """``name.key.0.key`` or ``name.results[name=Done].id`` into saved answers."""
        head, *rest = ref.split(".")
        values = self.values()
        if head not in values:
            raise ProbeError(f"nothing saved as {head!r} (an earlier step failed?)")
        value = values[head]
        for part in rest:
            m = re.fullmatch(r"(\w+)\[(\w+)=([^\]]*)\]", part)
            try:
                if m:
                    key, want = m.group(2), m.group(3)
                    value = next(v for v in value[m.group(1)] if str(v.get(key)) == want)
                elif isinstance(value, list):
                    value = value[int(part)]
                else:
                    value = value[part]
            except (KeyError, IndexError, TypeError, ValueError, StopIteration):
                raise ProbeError(f"{ref}: no {part!r} in {str(value)[:300]}") from None
        return value


def run_probe(probe: Probe, target: Target) -> dict[str, Any]:
    """Run the probe's steps (then its clean-up, whatever happened); return its transcript."""
    ctx = Context(target)
    exchanges: list[dict[str, Any]] = []
    deliveries: list[Received] | None = None
    if probe.webhooks:
        target.webhooks_begin()
    try:
        for n, step in enumerate(probe.steps):
            if probe.webhooks and n:
                # Plane builds a delivery's body in a Celery task, from the object as it is when
                # the task runs: a step sent before the previous one's webhooks left changes
                # their bodies, and a delete right after an update loses the update's webhook
                # (the task finds nothing and gives up). Races the probes must not measure.
                target.webhooks_settle()
            try:
                answer = _send(target, ctx, step)
            except ProbeError as exc:
                # A value this step needs was not created: that difference shows earlier.
                exchanges.append({"request": step.describe(), "skipped": str(exc)})
                continue
            if step.save and answer.status < 300:
                ctx.saved[step.save] = answer.json()
            if step.record:
                exchanges.append({"request": step.describe(), "response": _response(answer)})
        if probe.webhooks:
            deliveries = target.webhooks_collect()
    finally:
        for step in probe.cleanup:
            try:
                _send(target, ctx, step)
            except ProbeError:
                pass  # what it would delete was never created
    transcript: dict[str, Any] = {"exchanges": exchanges}
    if deliveries is not None:
        transcript["webhooks"] = [_delivery(d, target.webhook_secret) for d in
                                  sorted(deliveries, key=_delivery_order)]
    return Normalizer(ctx).transcript(transcript)


def _send(target: Target, ctx: Context, step: Step) -> Answer:
    headers = {"Content-Type": "application/json"} if step.raw is not None else None
    return target.http.call(step.method, ctx.fill(step.path), ctx.fill(step.body), raw=step.raw,
                            key=step.key, headers=headers)


def _response(answer: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {"status": answer.status}
    for name in RECORDED_HEADERS:
        value = answer.header(name)
        if value is not None:
            out[name] = value
    try:
        out["body"] = json.loads(answer.body) if answer.body else None
    except ValueError:
        out["text"] = answer.body.decode("utf-8", "replace")[:500]
    return out


def _delivery_order(d: Received) -> tuple[str, ...]:
    try:
        body = json.loads(d.body)
    except ValueError:
        return ("~",)
    activity = body.get("activity") or {}
    return (str(body.get("event")), str(body.get("action")), str(activity.get("field")),
            json.dumps(activity.get("new_value"), sort_keys=True))


def _delivery(d: Received, secret: str | None) -> dict[str, Any]:
    headers = []
    for name, value in d.headers:
        headers.append([name, VOLATILE_WEBHOOK_HEADERS.get(name.lower(), value)])
    signature = d.header("X-Plane-Signature") or ""
    expected = hmac.new((secret or "").encode(), d.body, hashlib.sha256).hexdigest()
    try:
        body: Any = json.loads(d.body)
        python_bytes = json.dumps(body).encode() == d.body
    except ValueError:
        body, python_bytes = d.body.decode("utf-8", "replace"), False
    return {
        "path": d.path,
        "headers": headers,
        "signature_valid": bool(secret) and hmac.compare_digest(expected, signature),
        "content_length_ok": d.header("Content-Length") == str(len(d.body)),
        "body_is_python_json_dumps": python_bytes,
        "body": body,
    }


class Normalizer:
    """Placeholders for what legitimately differs between two servers behaving alike."""

    def __init__(self, ctx: Context) -> None:
        t = ctx.target
        self.ids: dict[str, str] = {
            t.project_id.lower(): "<project>", t.workspace_id.lower(): "<workspace>",
            t.me["id"].lower(): "<me>", t.member["id"].lower(): "<member>",
        }  # fmt: skip
        self.exact: dict[str, str] = {}
        # Inside a user object the id says whose the names are: two users may share a first name
        # (a lab seeded with "Lab Admin" and "Lab Member"), and the value alone cannot tell.
        self.users: dict[str, tuple[str, dict[str, Any]]] = {}
        for who, user in (("me", t.me), ("member", t.member)):
            self.users[user["id"].lower()] = (who, user)
            for key in USER_NAME_KEYS:
                if user.get(key):
                    self.exact.setdefault(str(user[key]), f"<{who}.{key}>")
        self.substrings = {ctx.uniq: "<UNIQ>", ctx.uniq.lower(): "<uniq>", t.slug: "<slug>"}

    def transcript(self, value: Any) -> Any:
        return self._walk(value, None)

    def _walk(self, value: Any, key: str | None) -> Any:
        if key in VOLATILE_KEYS and value is not None:
            return VOLATILE_KEYS[key]
        if isinstance(value, dict):
            names = self._user_names(value)
            return {k: names[k] if k in names else self._walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, None) for v in value]
        if isinstance(value, str):
            return self._string(value)
        return value

    def _user_names(self, obj: dict[str, Any]) -> dict[str, str]:
        """Placeholders for the name fields of an object that is one of the two users."""
        uid = obj.get("id")
        if not isinstance(uid, str) or uid.lower() not in self.users:
            return {}
        who, user = self.users[uid.lower()]
        return {
            key: f"<{who}.{key}>"
            for key in USER_NAME_KEYS
            if user.get(key) and obj.get(key) == user[key]
        }

    def _string(self, text: str) -> str:
        if text in self.exact:
            return self.exact[text]
        if TS_RE.match(text):
            return "<timestamp>"
        text = UUID_RE.sub(self._id, text)
        for raw, placeholder in self.substrings.items():
            text = text.replace(raw, placeholder)
        return text

    def _id(self, m: re.Match[str]) -> str:
        key = m.group(0).lower()
        if key not in self.ids:
            self.ids[key] = f"<id{len(self.ids) - 3}>"
        return self.ids[key]
