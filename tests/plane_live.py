"""Live contract mode: the suites that run against the emulator, run against a real Plane instead.

One switch. When ``PLANE_LIVE_BASE_URL`` is set (with ``PLANE_LIVE_API_KEY``,
``PLANE_LIVE_WORKSPACE`` and ``PLANE_LIVE_PROJECT``), the client suite, the contract probes and the
project-sync scenarios also talk to that server. Without it everything runs against the
emulator, as in CI. Optional:

- ``PLANE_LIVE_WEBHOOK_SECRET``: the secret of the workspace webhook (webhook probes check the
  signature of what arrives);
- ``PLANE_LIVE_SET_WEBHOOK``: a command that points the workspace webhook at a URL, ``{url}``
  standing for it (Plane CE manages webhooks only through its session-auth web API, so how this
  is done is the server operator's business). Without it, probes that need webhooks are skipped;
- ``PLANE_LIVE_UNSET_WEBHOOK``: a command run at the end to switch the webhook off again;
- ``PLANE_LIVE_RECORD=1``: write what the live server answered to tests/contract/recordings/.

The key is a secret: it is read from the environment, sent only in the ``X-API-Key`` header and
never printed, logged or written to a recording.

Plane allows 60 requests a minute per key. Every live request of the test process is paced by
one of the wheel's own rate budgets (``LIVE_BUDGET``), shared with the ``PlaneClient`` instances
the live tests build, so a live run never collects a 429; it just takes minutes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from plane_connector.ratebudget import LocalRateBudget

ENV_BASE_URL = "PLANE_LIVE_BASE_URL"
ENV_KEYS = ("PLANE_LIVE_API_KEY", "PLANE_LIVE_WORKSPACE", "PLANE_LIVE_PROJECT")
#: What the live tests plan with: Plane's 60 a minute, less a margin for the server's clock.
LIVE_RATE = 58
LIVE_WINDOW = 60.0
LIVE_BUDGET = LocalRateBudget()
_CAUGHT_UP: set[str] = set()  # key ids whose server-side window this process has accounted for


@dataclass(frozen=True)
class LiveConfig:
    base_url: str
    api_key: str = field(repr=False)
    workspace: str
    project: str
    webhook_secret: str | None = field(default=None, repr=False)
    set_webhook: str | None = None
    unset_webhook: str | None = None
    record: bool = False

    @classmethod
    def from_env(cls, environ: Any = None) -> LiveConfig | None:
        env = os.environ if environ is None else environ
        base = (env.get(ENV_BASE_URL) or "").strip()
        if not base:
            return None
        missing = [k for k in ENV_KEYS if not (env.get(k) or "").strip()]
        if missing:
            raise RuntimeError(f"{ENV_BASE_URL} is set but {', '.join(missing)} is not")
        return cls(
            base_url=base.rstrip("/"),
            api_key=env["PLANE_LIVE_API_KEY"].strip(),
            workspace=env["PLANE_LIVE_WORKSPACE"].strip(),
            project=env["PLANE_LIVE_PROJECT"].strip(),
            webhook_secret=(env.get("PLANE_LIVE_WEBHOOK_SECRET") or "").strip() or None,
            set_webhook=(env.get("PLANE_LIVE_SET_WEBHOOK") or "").strip() or None,
            unset_webhook=(env.get("PLANE_LIVE_UNSET_WEBHOOK") or "").strip() or None,
            record=(env.get("PLANE_LIVE_RECORD") or "") == "1",
        )

    @property
    def can_point_webhook(self) -> bool:
        return bool(self.set_webhook and self.webhook_secret)

    def point_webhook(self, url: str) -> None:
        """Run the operator's command that points the workspace webhook at ``url``."""
        if not self.set_webhook:
            raise RuntimeError("PLANE_LIVE_SET_WEBHOOK is not set")
        _run_hook(self.set_webhook.replace("{url}", shlex.quote(url)))

    def unpoint_webhook(self) -> None:
        if self.unset_webhook:
            _run_hook(self.unset_webhook)


def _run_hook(command: str) -> None:
    # The command's output may echo configuration; it is not shown unless the command fails,
    # and then only its exit status and last line (the lab helper never prints the secret).
    done = subprocess.run(  # noqa: S602 - an operator-provided command line, by design
        command, shell=True, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"webhook command failed ({done.returncode}): {tail}")


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class PacedHttp:
    """Plain HTTP/1.1 to one Plane server with raw answers, paced by a wheel rate budget.

    The contract probes need the exact status, headers and body bytes, which the client turns
    into exceptions; pacing still goes through the wheel's budget (``budget=None``: unpaced, for
    the emulator, whose 429s are then the tests' business). A paced call waits out a 429
    (``Retry-After``) and counts it; none is expected.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        budget: LocalRateBudget | None = None,
        rate: int = LIVE_RATE,
        window: float = LIVE_WINDOW,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.https = parts.scheme == "https"
        self._key = api_key
        self.budget = budget
        self.rate, self.window = rate, window
        self.sent = 0
        self.rate_limited = 0

    def __repr__(self) -> str:
        return f"<PacedHttp {self.host}:{self.port}>"

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self._key.encode()).hexdigest()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        key: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """``key``: ``"default"`` (the configured key), None (no key) or another key value."""
        sent = dict(headers or {})
        if key is not None:
            sent["X-API-Key"] = self._key if key == "default" else key
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if self.budget is not None and key == "default":
            self._catch_up()
        for _attempt in range(4):
            if self.budget is not None and key == "default":
                wait = self.budget.reserve(self.key_id, self.rate, self.window)
                if wait > 0:
                    time.sleep(wait)
            answer = self._send(method, path, payload, sent)
            self.sent += 1
            if answer.status != 429 or key != "default" or self.budget is None:
                return answer
            self.rate_limited += 1
            time.sleep(float(answer.header("Retry-After") or 1) + 0.5)
        return answer

    def _catch_up(self) -> None:
        """Count what the server already holds against this key (once per process).

        The budget starts empty in a new process, but Plane's window still holds the requests
        of the last minute (a run just before this one): ask Plane how many are left and book
        the difference as if sent now, which errs on the slow side."""
        if self.key_id in _CAUGHT_UP:
            return
        _CAUGHT_UP.add(self.key_id)
        assert self.budget is not None
        wait = self.budget.reserve(self.key_id, self.rate, self.window)
        if wait > 0:
            time.sleep(wait)
        answer = self._send("GET", "/api/v1/users/me/", None, {"X-API-Key": self._key})
        if answer.status == 429:
            time.sleep(float(answer.header("Retry-After") or 60) + 1)
            return
        try:
            remaining = int(answer.header("X-RateLimit-Remaining") or self.rate)
        except ValueError:
            return
        for _ in range(max(0, self.rate - 1 - remaining)):
            self.budget.reserve(self.key_id, self.rate, self.window)

    def _send(self, method: str, path: str, payload: bytes | None, headers: dict) -> Answer:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return Answer(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()


class ClientTarget:
    """A Plane for the client suite: a fresh emulator, or a scratch project on the live server.

    ``client()`` builds a ``PlaneClient`` paced for that server (the emulator's scaled
    20-per-0.6 s, or Plane's 58-per-minute through ``LIVE_BUDGET``); ``ensure_items(k)`` makes
    the project hold at least ``k`` work items (live: created through the client, once per
    module, deleted with the project at the end).
    """

    def __init__(self, kind: str, base_url: str, api_key: str, workspace: str, project: str,
                 *, rate: int, window: float, budget: LocalRateBudget | None,
                 emulator: Any = None) -> None:
        self.kind = kind
        self.base_url = base_url
        self._key = api_key
        self.workspace = workspace
        self.project = project
        self.rate, self.window, self.budget = rate, window, budget
        self.emulator = emulator
        self._items: list[str] = []

    def __repr__(self) -> str:
        return f"<ClientTarget {self.kind} {self.base_url}>"

    @property
    def api_key(self) -> str:
        return self._key

    @property
    def items_path(self) -> str:
        """The project's work-item collection on this server's route family (``/issues/`` on
        Plane <= 1.0), from the wheel's route map, never spelled here."""
        from plane_connector import server

        routes = server.detect(self.client()).routes
        return routes.work_items(self.workspace, self.project)

    def client(self, **kw: Any) -> Any:
        from plane_connector import PlaneClient

        kw.setdefault("requests_per_minute", self.rate)
        kw.setdefault("rate_window", self.window)
        if self.budget is not None:
            kw.setdefault("rate_budget", self.budget)
        return PlaneClient(self.base_url, api_key=self._key, **kw)

    def ensure_items(self, k: int) -> list[str]:
        if self.emulator is not None:
            have = [i["id"] for i in self.emulator.work_items(self.project)]
            if len(have) < k:
                self.emulator.seed_work_items(k - len(have), self.project)
            return [i["id"] for i in self.emulator.work_items(self.project)]
        client = self.client()
        while len(self._items) < k:
            n = len(self._items) + 1
            item = client.post(self.items_path, json={"name": f"Client suite item {n:03d}"})
            self._items.append(item["id"])
        return list(self._items)

    @classmethod
    def live(cls, config: LiveConfig, name: str) -> ClientTarget:
        """A scratch project named ``name`` on the live server (``drop()`` deletes it)."""
        http = PacedHttp(config.base_url, config.api_key, budget=LIVE_BUDGET)
        token = hashlib.sha256(f"{time.time()}{os.getpid()}".encode()).hexdigest()[:6].upper()
        made = http.call("POST", f"/api/v1/workspaces/{config.workspace}/projects/",
                         {"name": f"{name} {token}", "identifier": f"CS{token}"})
        if made.status != 201:
            raise RuntimeError(f"live Plane: scratch project not created ({made.status})")
        return cls("live", config.base_url, config.api_key, config.workspace, made.json()["id"],
                   rate=LIVE_RATE, window=LIVE_WINDOW, budget=LIVE_BUDGET)

    def drop(self) -> None:
        if self.kind == "live":
            http = PacedHttp(self.base_url, self._key, budget=LIVE_BUDGET)
            http.call("DELETE", f"/api/v1/workspaces/{self.workspace}/projects/{self.project}/")
