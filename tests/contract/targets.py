"""The two places a probe runs: a fresh emulator, or the live Plane named by PLANE_LIVE_*."""

from __future__ import annotations

import time
import uuid
from typing import Any

from plane_connector.testing import PlaneEmulator
from plane_connector.testing._api import EMULATOR_INSTANCE_ID, NEWEST_VERSION, version_tuple
from plane_live import LIVE_BUDGET, LiveConfig, PacedHttp
from webhook_capture import Received, Receiver

#: Seconds without a new delivery after which a live webhook burst is taken as complete. Plane
#: sends through three Celery tasks in a row; on the lab machine a delivery lands well under 1 s
#: after the request, so a quiet spell of 4 s (at least 6 s in all) is ample.
LIVE_QUIET = 4.0
LIVE_MIN_WAIT = 6.0
LIVE_MAX_WAIT = 60.0
#: Between two steps of a webhook probe: long enough for the step's deliveries to go out.
LIVE_SETTLE = 2.0


def family_of(version: str | None) -> str:
    """The work-item route family of a Plane release (the newest when unknown)."""
    try:
        return "issues" if version and version_tuple(version) < (1, 1, 0) else "work-items"
    except ValueError:
        return "work-items"


class EmulatorTarget:
    """A fresh emulator per probe, with a second project member and a webhook to a receiver."""

    kind = "emulator"

    def __init__(self, version: str = NEWEST_VERSION) -> None:
        self.emu = PlaneEmulator(seed=5, rate_limit=10_000, webhook_backoff=0.01,
                                 webhook_backoff_max=0.01, version=version)
        self.version = version
        self.family = family_of(version)
        self.receiver = Receiver()
        # Not a real secret: a per-run value for the emulator's own webhook.
        self.webhook_secret: str | None = "plane_wh_" + uuid.uuid4().hex

    def __enter__(self) -> EmulatorTarget:
        self.emu.start()
        self.receiver.start()
        self.member = self.emu.add_member("Member", "Lab", email="member@plane-emulator.local")
        self.emu.register_webhook(self.receiver.url, secret=self.webhook_secret)
        self.http = PacedHttp(self.emu.base_url, self.emu.api_key)
        self.slug = self.emu.workspace_slug
        self.project_id = self.emu.project_id
        # The live project (PLANE_LIVE_PROJECT, made through the API) has no labels; the
        # emulator's seeds some. Plane 1.0.0's label PATCH conflicts with any other label
        # without an external id, so the probes' project must match: none here either.
        self.emu.store.labels[self.project_id].clear()
        self.workspace_id = self.emu.workspace_id
        self.me: dict[str, Any] = self.emu.user
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()
        self.emu.stop()

    def webhooks_begin(self) -> None:
        self.emu.wait_webhooks_idle(10)
        with self.receiver.cond:
            self.receiver.received.clear()

    def webhooks_settle(self) -> None:
        self.emu.wait_webhooks_idle(10)

    def webhooks_collect(self) -> list[Received]:
        self.emu.wait_webhooks_idle(10)
        with self.receiver.cond:
            return list(self.receiver.received)


class LiveTarget:
    """The live Plane: its project, its two users, and a receiver its webhook points at."""

    kind = "live"

    def __init__(self, config: LiveConfig) -> None:
        self.config = config
        self.http = PacedHttp(config.base_url, config.api_key, budget=LIVE_BUDGET)
        self.slug = config.workspace
        self.project_id = config.project
        self.webhook_secret = config.webhook_secret
        self.receiver: Receiver | None = None
        self.version: str | None = None
        self.edition: str | None = None
        self.family = "work-items"

    def identify(self) -> None:
        """What the server says it is (``/api/instances/``, asked without the key, as Plane
        answers it to anyone). Refuses to go on when it is this project's emulator and the run
        would record: its answers would replace Plane's with nothing to show it."""
        answer = self.http.call("GET", "/api/instances/", key=None)
        body = answer.json() if answer.status == 200 else None
        instance = body.get("instance") if isinstance(body, dict) else None
        instance = instance if isinstance(instance, dict) else {}
        emulator = ("PlaneEmulator" in (answer.header("Server") or "")
                    or instance.get("instance_id") == EMULATOR_INSTANCE_ID)
        if emulator and self.config.record:
            raise RuntimeError(
                "PLANE_LIVE_RECORD=1 refused: PLANE_LIVE_BASE_URL is the plane_connector "
                "emulator, not Plane; recordings must come from a real Plane server")
        version = instance.get("current_version")
        self.version = version if isinstance(version, str) and version else None
        edition = instance.get("edition")
        self.edition = edition if isinstance(edition, str) and edition else None
        self.family = family_of(self.version)

    def start(self) -> LiveTarget:
        self.identify()
        me = self.http.call("GET", "/api/v1/users/me/")
        if me.status != 200:
            raise RuntimeError(f"live Plane: users/me answered {me.status}")
        self.me = me.json()
        ws = f"/api/v1/workspaces/{self.slug}"
        project = self.http.call("GET", f"{ws}/projects/{self.project_id}/")
        if project.status != 200:
            raise RuntimeError(f"live Plane: project {self.project_id} answered {project.status}")
        self.workspace_id = project.json()["workspace"]
        members = self.http.call("GET", f"{ws}/projects/{self.project_id}/members/").json()
        others = [m for m in members if m["id"] != self.me["id"]]
        if not others:
            raise RuntimeError("live Plane: the project needs a second member (for assignees)")
        self.member = others[0]
        if self.config.can_point_webhook:
            self.receiver = Receiver().start()
            self.config.point_webhook(self.receiver.url)
        return self

    def stop(self) -> None:
        if self.receiver is not None:
            self.config.unpoint_webhook()
            self.receiver.stop()

    @property
    def has_webhooks(self) -> bool:
        return self.receiver is not None

    def webhooks_begin(self) -> None:
        """Wait until earlier deliveries (clean-ups of earlier probes) stop, then start afresh."""
        assert self.receiver is not None
        self._quiet(min_wait=0.0)
        with self.receiver.cond:
            self.receiver.received.clear()

    def webhooks_settle(self) -> None:
        self._quiet(min_wait=LIVE_SETTLE, quiet=LIVE_SETTLE)

    def webhooks_collect(self) -> list[Received]:
        assert self.receiver is not None
        self._quiet(min_wait=LIVE_MIN_WAIT)
        with self.receiver.cond:
            return list(self.receiver.received)

    def _quiet(self, min_wait: float, quiet: float = LIVE_QUIET) -> None:
        assert self.receiver is not None
        started = last_change = time.monotonic()
        seen = len(self.receiver.received)
        while True:
            now = time.monotonic()
            if now - started >= LIVE_MAX_WAIT:
                return
            if now - started >= min_wait and now - last_change >= quiet:
                return
            with self.receiver.cond:
                self.receiver.cond.wait(0.2)
                count = len(self.receiver.received)
            if count != seen:
                seen, last_change = count, time.monotonic()
