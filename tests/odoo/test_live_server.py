"""A real Odoo server in prefork mode (--workers 2, a cron worker) against the Plane emulator.

What the in-process Odoo tests cannot show: webhooks from the emulator (real signed HTTP, no
test cookie) reaching /plane/webhook on a multi-process server, the cron worker woken by the
delivery and processing it in another process, and the Plane client working in forked workers.
Skipped when no Odoo is installed here (see scripts/odoo-tests.sh for where they are looked for).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import urllib.error
import urllib.request
import uuid
import xmlrpc.client
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from odoo_server import OdooServer, series_params, wait_until
from plane_connector import sign_body
from plane_connector.testing import PlaneEmulator

WEBHOOK_SECRET = "plane_wh_" + uuid.uuid4().hex
#: project_sync first: the database is a copy of its template with bir_plane_sync added.
MODULES = ("ipai_plane_project_sync", "ipai_bir_plane_sync")
pytestmark = pytest.mark.odoo_templates(MODULES)  # built before the first test (conftest.py)


@pytest.fixture(scope="module", params=series_params())
def live_odoo(request, tmp_path_factory) -> Iterator[dict]:
    series = request.param
    emulator = PlaneEmulator(rate_limit=600, seed=3).start()
    env = {"PLANE_LIVE_KEY": emulator.api_key, "PLANE_LIVE_WH": WEBHOOK_SECRET}
    log = tmp_path_factory.mktemp("odoo") / "odoo.log"
    server = OdooServer(series, ",".join(MODULES), env, log)
    try:
        server.start()
        server.set_params({
            "plane.base_url": emulator.base_url,
            "plane.workspace_slug": emulator.workspace_slug,
            "plane.api_key_ref": "env:PLANE_LIVE_KEY",
            "plane.webhook_secret_ref": "env:PLANE_LIVE_WH",
            "plane.bir.project_id": emulator.project_id,
        })
        yield {"url": server.url, "db": server.db, "call": server.call, "emulator": emulator,
               "log": log, "series": series, "pid": server.proc.pid,
               "port": int(server.url.rsplit(":", 1)[1])}
    finally:
        server.stop()
        emulator.stop()


def test_webhook_round_trip_on_a_prefork_server(live_odoo):
    call, emulator = live_odoo["call"], live_odoo["emulator"]
    filing_id = call("bir.filing", "create", {"form_code": "2550M", "period": "2026-10",
                                              "due_date": "2026-11-20"})
    # The create wakes the BIR cron, which pushes the filing. Not the button here: pressed while
    # the cron pushes the same row, one of the two transactions meets PostgreSQL's "could not
    # serialize access" and Odoo retries it, after its ERROR line "bad query" (the round trip
    # below is what this test is about; the button is tested at the end of the file).
    item_id = wait_until(lambda: call("bir.filing", "read", [filing_id], ["plane_work_item_id"])[
        0]["plane_work_item_id"], 60, "the cron worker to push the filing")
    assert emulator.work_item(item_id)["name"] == "BIR 2550M 2026-10"

    # Plane delivers to the multi-worker server by ?db= (the db filter also names it).
    hook = emulator.register_webhook(
        f"{live_odoo['url']}/plane/webhook?db={live_odoo['db']}", WEBHOOK_SECRET
    )
    done = next(s["id"] for s in emulator.states() if s["group"] == "completed")
    emulator.update_work_item(item_id, state=done)
    (attempt,) = emulator.wait_for_deliveries(1, timeout=30)
    assert (attempt.outcome, attempt.status) == ("delivered", 200), attempt
    assert attempt.webhook_id == hook["id"]

    # No cron call from here: the delivery woke the cron worker, another process. The
    # reconciliation cron (due at the server's start) may sweep the same change in first and
    # mark the filing done before the delivery's turn, so wait for both.
    def delivery_rows():
        return call("plane.webhook.delivery", "search_read",
                    [("webhook_id", "=", hook["id"])], ["state", "attempts"])

    wait_until(
        lambda: call("bir.filing", "read", [filing_id], ["state"])[0]["state"] == "done"
        and [r["state"] for r in delivery_rows()] == ["done"],
        60, "the cron worker to process the delivery and mark the filing done",
    )
    rows = delivery_rows()
    assert rows == [{"id": rows[0]["id"], "state": "done", "attempts": 1}]
    log = live_odoo["log"].read_text()
    assert " ERROR " not in log and " CRITICAL " not in log, log[-3000:]
    assert emulator.api_key not in log and WEBHOOK_SECRET not in log


def _post(url: str, body: bytes, delivery_id: str) -> tuple[int, str]:
    headers = {
        "Content-Type": "application/json", "X-Plane-Delivery": delivery_id,
        "X-Plane-Event": "issue", "X-Plane-Signature": sign_body(WEBHOOK_SECRET, body),
    }
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())["status"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()[:200]


def test_push_button_right_after_save_races_the_cron_without_an_error_line(live_odoo):
    """*Push to Plane* pressed right after save, while the push cron that the save woke pushes
    the same filing: one of the two pushes it, the other leaves it (the button says so), one
    work item each, and no ERROR line. Before, both pushed, and the transaction that wrote the
    filing second met "could not serialize access", logged by Odoo as ERROR "bad query"."""
    call, emulator, log = live_odoo["call"], live_odoo["emulator"], live_odoo["log"]
    dbuuid = call("ir.config_parameter", "get_param", "database.uuid")
    offset = log.stat().st_size
    # Plane's create answers slowly: the cron is still pushing when the button comes.
    slow = emulator.faults.add(route_regex=r"/work-items/$", method="POST", kind="delay",
                               seconds=1.5, count=None)
    pushed_by = []
    try:
        for month in ("01", "02", "03"):
            filing = call("bir.filing", "create", {"form_code": "2550M",
                                                   "period": f"2027-{month}",
                                                   "due_date": f"2027-{month}-20"})
            try:
                call("bir.filing", "action_plane_sync", [filing])
                pushed_by.append("button")
            except xmlrpc.client.Fault as refused:
                assert "being pushed to Plane by the background job" in refused.faultString
                pushed_by.append("cron")
            wait_until(lambda f=filing: not call("bir.filing", "read", [f], ["plane_dirty"])[0][
                "plane_dirty"], 60, f"filing {filing} pushed")
            items = [i for i in emulator.work_items()
                     if i.get("external_id") == f"{dbuuid}:bir.filing:{filing}"]
            assert len(items) == 1, items
    finally:
        emulator.faults.remove(slow)
    with open(log, "rb") as fh:
        fh.seek(offset)
        tail = fh.read().decode("utf-8", "replace")
    assert " ERROR " not in tail and " CRITICAL " not in tail, tail[-3000:]
    print("pushed by:", pushed_by)


def test_concurrent_duplicates_are_stored_once(live_odoo):
    """Each event is sent three times at once (same delivery id twice, then Plane's retry with a
    new id and the same bytes) to two HTTP workers: one row per event, processed once."""
    webhook_id = str(uuid.uuid4())
    bodies = [json.dumps({
        "event": "issue", "action": "created", "webhook_id": webhook_id,
        "workspace_id": str(uuid.uuid4()),
        "data": {"id": str(uuid.uuid4()), "name": f"burst {i}", "state": {"group": "backlog"}},
        "activity": {"field": None},
    }).encode() for i in range(12)]
    sends = []
    for body in bodies:
        first = str(uuid.uuid4())
        sends += [(body, first), (body, first), (body, str(uuid.uuid4()))]
    url = f"{live_odoo['url']}/plane/webhook"
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda s: _post(url, *s), sends))
    assert {code for code, _ in answers} == {200}, answers
    statuses = [status for _, status in answers]
    assert statuses.count("accepted") == len(bodies), statuses
    assert statuses.count("duplicate") == 2 * len(bodies)

    call = live_odoo["call"]
    fields = ["fingerprint", "state", "attempts"]

    def all_done():
        rows = call("plane.webhook.delivery", "search_read",
                    [("webhook_id", "=", webhook_id)], fields)
        return rows if rows and all(r["state"] == "done" for r in rows) else None

    rows = wait_until(all_done, 60, "the cron worker to process the burst")
    assert sorted(r["fingerprint"] for r in rows) == sorted(
        hashlib.sha256(b).hexdigest() for b in bodies)
    assert {r["attempts"] for r in rows} == {1}
    log = live_odoo["log"].read_text()
    assert " ERROR " not in log and " CRITICAL " not in log, log[-3000:]


# -- issue 12: what an outsider or a plain employee can make a prefork server do


MiB = 1024 * 1024
#: Odoo's XML-RPC fault code for an AccessError.
ACCESS_ERROR = 4


def _stat(pid: int | str) -> list[str]:
    """/proc/<pid>/stat from its third field on (state, ppid, ...; nice is [16])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _http_workers(main_pid: int) -> list[int]:
    """The prefork server's HTTP workers: its forked children at its own nice value (the cron
    worker renices itself by 10) other than the gevent process (``odoo-bin gevent``)."""
    nice = _stat(main_pid)[16]
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = _stat(entry.name)
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat[1]) == main_pid and stat[16] == nice and b"gevent" not in argv:
                workers.append(int(entry.name))
    assert workers, "no HTTP worker found"
    return workers


def _memory_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for {pid}")


def _peak_growth(main_pid: int, send) -> tuple[object, int]:
    """Run ``send()``; return its result and the largest peak-RSS growth of an HTTP worker.

    Each worker's peak (VmHWM) is reset to its current RSS first (clear_refs 5), so the peak
    afterwards is what handling this request took."""
    before = {}
    for pid in _http_workers(main_pid):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before[pid] = _memory_kib(pid, "VmRSS")
    result = send()
    growth = max(_memory_kib(pid, "VmHWM") - rss for pid, rss in before.items()
                 if Path(f"/proc/{pid}").exists())
    return result, growth * 1024


def _raw_post(port: int, path: str, headers: dict[str, str], pieces, *, chunked: bool) -> int:
    """POST ``pieces`` over a raw socket while reading the answer; returns the status code.

    The body is sent from a thread: a server that answers before reading everything closes
    the connection, and the sender's error then is expected, not a failure."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

    def send():
        try:
            for piece in pieces:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        sock.close()
        sender.join(timeout=60)
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_webhook_body_is_never_held_whole(live_odoo):
    """A 40 MiB chunked body, or a Content-Length that lies, against the prefork server: the
    answer is 413/401, the worker's peak memory grows by less than 2 x max_body, and nothing
    is stored."""
    call, port = live_odoo["call"], live_odoo["port"]
    # Large enough that the interpreter's own noise (a few MiB per request at worst) stays
    # inside the bound, small enough that holding the 40 MiB body would be 2.5 times over it.
    max_body = 8 * MiB
    call("ir.config_parameter", "set_param", "plane.webhook_max_body", str(max_body))
    stored = call("plane.webhook.delivery", "search_count", [])
    big = [b"x" * 65536] * (40 * MiB // 65536)
    headers = {"Content-Type": "application/json", "X-Plane-Event": "issue",
               "X-Plane-Delivery": str(uuid.uuid4()), "X-Plane-Signature": "0" * 64}
    main_pid = live_odoo["pid"]
    # Warm every HTTP worker up (a worker's first requests import and cache things) with small
    # refused bodies, sent concurrently so that each worker takes some. Small on purpose: a
    # worker that already held a body of max_body would reuse that memory, and the measure
    # would not show what reading one costs.
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=4) as pool:
            warm = list(pool.map(lambda pieces: _raw_post(
                port, "/plane/webhook", headers, iter(pieces), chunked=True),
                [[b"{}"], [b"{}"], [b"{}"], [b"{}"]]))
        assert warm == [401] * 4, warm

    status, growth = _peak_growth(main_pid, lambda: _raw_post(
        port, "/plane/webhook", headers, iter(big), chunked=True))
    assert status == 413, status
    assert growth < 2 * max_body, f"chunked: a worker grew by {growth / MiB:.1f} MiB"
    print(f"\n[{live_odoo['series']}] 40 MiB chunked: 413, peak growth {growth / MiB:.2f} MiB")

    # Content-Length says 1000 bytes, 40 MiB follow: exactly 1000 are read (bad signature).
    lying = dict(headers, **{"Content-Length": "1000"})
    status, growth = _peak_growth(main_pid, lambda: _raw_post(
        port, "/plane/webhook", lying, iter(big), chunked=False))
    assert status == 401, status
    assert growth < 2 * max_body, f"lying length: a worker grew by {growth / MiB:.1f} MiB"
    print(f"[{live_odoo['series']}] Content-Length 1000 + 40 MiB: 401, "
          f"peak growth {growth / MiB:.2f} MiB")

    # Content-Length above the limit: refused before a byte of the body is read.
    huge = dict(headers, **{"Content-Length": str(100 * MiB)})
    status = _raw_post(port, "/plane/webhook", huge, iter([b"x" * 65536]), chunked=False)
    assert status == 413, status
    assert call("plane.webhook.delivery", "search_count", []) == stored, "nothing stored"


def test_refusals_look_the_same_from_outside(live_odoo):
    url, db = live_odoo["url"], live_odoo["db"]
    body = json.dumps({"event": "issue", "action": "created", "data": {"id": "x"}}).encode()
    headers = {"Content-Type": "application/json", "X-Plane-Event": "issue",
               "X-Plane-Delivery": str(uuid.uuid4()), "X-Plane-Signature": "0" * 64}
    answers = {}
    for why, query in (("bad signature", f"?db={db}"), ("unknown database", "?db=nope"),
                       ("filtered database", "?db=postgres")):
        request = urllib.request.Request(f"{url}/plane/webhook{query}", data=body,  # noqa: S310
                                         method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=60)  # noqa: S310 - loopback
        answers[why] = (caught.value.code, caught.value.headers["Content-Type"],
                        caught.value.read())
    assert len(set(answers.values())) == 1, answers
    assert answers["bad signature"][0] == 401
    assert json.loads(answers["bad signature"][2]) == {"status": "rejected"}


def _employee(live_odoo) -> tuple[int, str]:
    call = live_odoo["call"]
    groups_field = "group_ids" if "group_ids" in call(
        "res.users", "fields_get", ["group_ids"], attributes=["type"]) else "groups_id"
    groups = [call("ir.model.data", "search_read", [("module", "=", module), ("name", "=", name)],
                   ["res_id"])[0]["res_id"]
              for module, name in (("base", "group_user"), ("project", "group_project_user"))]
    password = "employee-" + uuid.uuid4().hex[:12]
    login = f"employee.{uuid.uuid4().hex[:8]}@example.com"
    uid = call("res.users", "create", {"name": "Plain Employee", "login": login,
                                       "password": password, groups_field: [(6, 0, groups)]})
    return uid, password


def test_employee_rpc_cannot_write_plane_ids_or_create_plane_projects(live_odoo):
    """Through XML-RPC and JSON-RPC, as a plain employee (internal user + project user)."""
    call, emulator, db, url = (live_odoo[k] for k in ("call", "emulator", "db", "url"))
    uid, password = _employee(live_odoo)
    models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

    def as_employee(model, method, *args, **kw):
        return models.execute_kw(db, uid, password, model, method, list(args), kw)

    def as_employee_json(model, method, *args, **kw):
        payload = json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": [db, uid, password, model, method, list(args), kw]}}).encode()
        request = urllib.request.Request(f"{url}/jsonrpc", data=payload,  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    filing = as_employee("bir.filing", "create", {"form_code": "1601-C", "period": "2026-07",
                                                  "due_date": "2026-08-10"})
    # The cron worker pushes the new filing (as the sync, allowed): let it finish first, so
    # that the requests counted below are the employee's alone.
    pushed = wait_until(lambda: call("bir.filing", "read", [filing], ["plane_work_item_id"])[0][
        "plane_work_item_id"], 60, "the cron worker to push the filing")
    emulator.wait_webhooks_idle(10)
    project = call("project.project", "create", {"name": "Employee's team"})
    task = call("project.task", "create", {"name": "Theirs", "project_id": project,
                                           "user_ids": [(6, 0, [uid])]})
    sent = len(emulator.requests)
    for model, record, field in (("bir.filing", filing, "plane_work_item_id"),
                                 ("bir.filing", filing, "plane_project_id"),
                                 ("project.task", task, "plane_work_item_id")):
        for context in ({}, {"plane_remote": True}):
            with pytest.raises(xmlrpc.client.Fault, match="can only be set") as caught:
                as_employee(model, "write", [record], {field: "../../other"},
                            context=context)
            assert caught.value.faultCode == ACCESS_ERROR
        answer = as_employee_json(model, "write", [record], {field: "%2e%2e/other"})
        assert "AccessError" in json.dumps(answer.get("error")), answer
    with pytest.raises(xmlrpc.client.Fault) as caught:
        as_employee("project.project", "action_plane_create_project", [project])
    assert caught.value.faultCode == ACCESS_ERROR, caught.value
    answer = as_employee_json("project.project", "action_plane_create_project", [project])
    assert "AccessError" in json.dumps(answer.get("error")), answer
    assert len(emulator.requests) == sent, "no request reached Plane"
    assert emulator.store.projects.keys() == {emulator.project_id}, "no Plane project made"
    (row,) = call("bir.filing", "read", [filing], ["plane_work_item_id", "plane_project_id"])
    assert row["plane_work_item_id"] == pushed
    assert row["plane_project_id"] == emulator.project_id
    # Their own work still syncs: the button pushes a filing they may edit.
    as_employee("bir.filing", "write", [filing], {"notes": "checked"})
    # The write wakes the cron too: the button goes after its push (see the first test).
    wait_until(lambda: not call("bir.filing", "read", [filing], ["plane_dirty"])[0][
        "plane_dirty"], 60, "the cron worker to push the edit")
    before = len(emulator.requests)
    as_employee("bir.filing", "action_plane_sync", [filing])
    assert [r.method for r in emulator.requests[before:] if r.method != "GET"] == ["PATCH"]
    assert "checked" in emulator.work_item(pushed)["description_html"]
