"""Databases for the live Odoo servers (bench/odoo_live.py, tests/odoo/odoo_server.py): the
modules are installed once per series and module set into a template database, and each server
gets a copy of it (``CREATE DATABASE ... TEMPLATE`` and a copy of its filestore).

A full ``-i`` of ipai_plane_project_sync (which pulls in ``project``, ``mail``, ``portal``...)
takes a minute of CPU or more; a copy takes seconds. Each server still gets a database of its
own, untouched by any other test: the template is never served.

* A template is named by what it is made of (the series, the Odoo, the modules, this tree's
  package and addons), so a changed tree never gets an old template; it is built under a file
  lock (two processes, e.g. pytest and the ``python -m bench`` it starts, build it once), into
  a scratch name renamed when the install succeeded (a failed install leaves no template).
* ``[a, b]`` is built from a copy of the template of ``[a]`` (``-i b``: the heavy module first,
  its install shared).
* :func:`prepare` builds the templates the collected tests declare (the pytest marker
  ``odoo_templates``, tests/conftest.py) before the first test, the series side by side;
  :func:`warm` does the same for one module list on first use (the bench measures every series
  it finds, one after the other).
* The process that built a template drops it at exit (:func:`drop_own`, registered atexit).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DB_HOST = os.environ.get("ODOO_DB_HOST", "127.0.0.1")
DB_PORT = os.environ.get("ODOO_DB_PORT", "5432")
DB_USER = os.environ.get("ODOO_DB_USER", "odoo")  # Odoo 19 refuses the "postgres" role
#: Odoo's data directory for these servers (filestores, sessions): apart from a developer's own.
DATA_DIR = Path(os.environ.get("PLANE_ODOO_DATA_DIR")
                or Path(tempfile.gettempdir()) / f"plane-odoo-data-{os.getuid()}")
#: Every addons directory a template may need: Odoo's (added per series), ours, the bench's.
OUR_ADDONS = (ROOT / "odoo_addons", ROOT / "bench" / "odoo_addons")

_own: set[str] = set()
_synced: set[str] = set()
_lock = threading.Lock()
#: Install and copy counts of this process, for whoever wants to see what a run cost.
stats = {"installs": 0, "copies": 0, "syncs": 0}


def data_dir_args() -> list[str]:
    return ["--data-dir", str(DATA_DIR)]


def filestore(db: str) -> Path:
    return DATA_DIR / "filestore" / db


def sync(series: str) -> None:
    """This tree's plane_connector into that Odoo's Python (``odoo-tests.sh --sync-only``), once
    per process and series: the script compares byte for byte and installs only what differs,
    so a second call in the same run has nothing to do but costs a few seconds."""
    with _lock:
        if series in _synced:
            return
    done = subprocess.run(
        [str(ROOT / "scripts" / "odoo-tests.sh"), "--sync-only"], capture_output=True,
        text=True, timeout=900, env=dict(os.environ, ODOO_SERIES=series),
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"syncing plane_connector into Odoo {series} failed: "
                           f"{(done.stdout + done.stderr)[-1500:]}")
    with _lock:
        _synced.add(series)
        stats["syncs"] += 1


def _psql(sql: str, db: str = "postgres") -> str:
    done = subprocess.run(
        ["psql", "-h", DB_HOST, "-p", DB_PORT, "-U", DB_USER, "-d", db, "-v", "ON_ERROR_STOP=1",
         "-Atc", sql], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {done.stderr.strip()[-600:]}")
    return done.stdout.strip()


def _exists(db: str) -> bool:
    return _psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'") == "1"


def _digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for base in paths:
        for path in sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                h.update(str(path.relative_to(ROOT)).encode() + b"\0")
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _tree() -> str:
    """What a template is made of on our side: the package (as dist/TREE digests it) and the
    addons."""
    if "tree_stamp" not in sys.modules:
        import importlib.util

        spec = importlib.util.spec_from_file_location("tree_stamp",
                                                      ROOT / "scripts" / "tree_stamp.py")
        assert spec and spec.loader
        sys.modules["tree_stamp"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["tree_stamp"])
    return sys.modules["tree_stamp"].digest(ROOT) + _digest(OUR_ADDONS)


_tree_digest: str | None = None


def template_name(odoo: Any, modules: Iterable[str]) -> str:
    global _tree_digest
    if _tree_digest is None:
        _tree_digest = _tree()
    key = "\0".join([odoo.series, str(odoo.path), str(odoo.python), *modules, _tree_digest])
    return f"plane_tpl{odoo.series}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def addons_path(odoo: Any) -> str:
    """Odoo's addons (``odoo`` is anything with ``series``, ``path`` and ``python``), ours and
    the bench's: a template may hold any of them."""
    own = [d for d in (Path(odoo.path) / "addons", Path(odoo.path) / "odoo" / "addons")
           if d.is_dir()]
    return ",".join(str(d) for d in [*own, *OUR_ADDONS])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _locked(name: str) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"{name}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _copy(source: str, target: str) -> None:
    """``target`` as a copy of ``source`` (no session may be connected to ``source``)."""
    _psql(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    if filestore(source).is_dir():
        shutil.copytree(filestore(source), filestore(target))
    with _lock:
        stats["copies"] += 1


def terminate(proc: subprocess.Popen[Any]) -> None:
    """Stop a prefork Odoo whose database is dropped next: SIGTERM, and a second one after a few
    seconds, Odoo's forced shutdown (the graceful one waits for each worker's current sleep,
    the cron worker's up to a minute); SIGKILL if even that hangs."""
    for wait in (3, 30):
        proc.terminate()
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait(timeout=10)


def drop(db: str) -> None:
    """Drop ``db`` (its sessions closed first) and its filestore."""
    subprocess.run(["dropdb", "-h", DB_HOST, "-p", DB_PORT, "-U", DB_USER, "--if-exists",
                    "--force", db], capture_output=True, timeout=120)  # fmt: skip
    shutil.rmtree(filestore(db), ignore_errors=True)


def _install(odoo: Any, db: str, modules: Iterable[str]) -> None:
    demo = ["--without-demo=all"] if int(odoo.series) < 19 else []
    init = subprocess.run(
        [str(odoo.python), str(Path(odoo.path) / "odoo-bin"), f"--addons-path={addons_path(odoo)}",
         "-d", db, "--db_host", DB_HOST, "--db_port", DB_PORT, "--db_user", DB_USER,
         "--http-interface", "127.0.0.1", *data_dir_args(), "-i", ",".join(modules),
         "--stop-after-init", "--max-cron-threads", "0", "--http-port", str(_free_port()),
         *demo], capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    if init.returncode != 0 or " ERROR " in init.stderr or " CRITICAL " in init.stderr:
        raise RuntimeError(f"installing {','.join(modules)} on Odoo {odoo.series} failed: "
                           f"{init.stderr[-3000:]}")
    with _lock:
        stats["installs"] += 1


def template(odoo: Any, modules: Iterable[str]) -> str:
    """The template database of ``modules`` on ``odoo`` (anything with ``series``, ``path`` and
    ``python``), built if missing.

    The order counts: the template of ``[a, b]`` is a copy of the template of ``[a]`` with ``b``
    installed, so the heavy module comes first and the others share its install."""
    modules = list(dict.fromkeys(modules))
    name = template_name(odoo, modules)
    with _locked(name):
        if _exists(name):
            return name
        sync(odoo.series)
        scratch = f"{name}_build"
        drop(scratch)  # a build interrupted earlier
        try:
            if len(modules) > 1:
                base = template(odoo, modules[:-1])
                with _locked(base):
                    _copy(base, scratch)
                _install(odoo, scratch, modules[-1:])
            else:
                _install(odoo, scratch, modules)
            _psql(f'ALTER DATABASE "{scratch}" RENAME TO "{name}"')
            if filestore(scratch).is_dir():
                filestore(scratch).rename(filestore(name))
        except BaseException:
            drop(scratch)
            raise
        with _lock:
            _own.add(name)
        return name


def warm(found: dict[str, Any], modules: Iterable[str], first: str) -> None:
    """The templates of ``modules`` for every series in ``found``, ``first`` among them, built
    side by side (one install per series); raises what building ``first``'s raised. The other
    series' failures are left for their own tests to meet."""
    modules = list(modules)
    with ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:
        futures = {s: pool.submit(template, odoo, modules) for s, odoo in found.items()}
        futures[first].result()
        for series, future in futures.items():
            if series != first:
                future.exception()  # waited for; its own test meets the error again


def prepare(found: dict[str, Any], wanted: dict[str, Iterable[Iterable[str]]]) -> list[str]:
    """The templates ``wanted`` per series (lists of modules), the series of ``found`` side by
    side, each one's templates in turn (a longer list after its prefix). Before the tests start,
    so that no test's timeout pays for an install. Returns what failed (the tests meet it
    again)."""

    def build(series: str) -> list[str]:
        failed = []
        for modules in sorted({tuple(m) for m in wanted[series]}, key=len):
            try:
                template(found[series], modules)
            except Exception as exc:  # noqa: BLE001 - reported; the test that needs it fails
                failed.append(f"Odoo {series} {','.join(modules)}: {exc}"[:2000])
        return failed

    series = [s for s in wanted if s in found]
    with ThreadPoolExecutor(max_workers=max(1, len(series))) as pool:
        return [f for failed in pool.map(build, series) for f in failed]


def create(odoo: Any, modules: Iterable[str], db: str, found: dict[str, Any] | None = None
           ) -> None:
    """A new database ``db`` with ``modules`` installed, as a copy of their template."""
    modules = list(modules)
    if found and odoo.series in found:
        warm(found, modules, odoo.series)
    name = template(odoo, modules)
    drop(db)
    with _locked(name):
        _copy(name, db)


#: One record of an Odoo log: time, milliseconds, pid, level, database, logger, message. A
#: traceback right after one is Odoo's own report of an error.
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\d+) (\w+) (\S+) ([\w.]+): (.*)$"
)
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


def crashed_outside_logging(lines: Iterable[str], series: str) -> str:
    """Why a live server is unfit to measure or test with, from its output (``lines``), or ''.

    A traceback not under a log record is a process that died before Odoo's logging: with
    ``--workers``, the master respawns such a child (the gevent one, typically, when a package
    its monkey-patching needs cannot be resolved) over and over, each respawn a full import of
    Odoo. A machine whose Odoo Python could not start it once spent about a core on that
    through every live test and benchmark, unnoticed. It is a fault of the machine, named so
    that it is fixed there, and the run fails rather than measures on a CPU it does not have."""
    crashes, cause, previous, block = 0, "", "", ""  # block: "crash", "first" or "logged"
    for line in lines:
        if not line.strip() or line.startswith(" "):
            continue
        if line.startswith("Traceback (most recent call last)"):
            if previous.startswith(_CHAINED):
                pass  # the same exception, chained: the same block
            elif LOG_LINE.match(previous):
                block = "logged"
            else:
                crashes += 1
                block = "first" if crashes == 1 else "crash"
        elif LOG_LINE.match(line):
            block = ""
        elif block == "first" and not line.startswith(_CHAINED):
            cause = line.strip()  # the last exception line of the first crash's chain
        previous = line
    if not crashes:
        return ""
    return (f"Odoo {series}.0: a process of the server crashed outside Odoo's logging "
            f"({crashes} crash(es), the first ending in: {cause[:200]}); with "
            "--workers the master respawns it over and over. Fix that Odoo's Python first "
            "(e.g. 'pkg_resources.DistributionNotFound' for a package that is installed: "
            "its setuptools predates the wheel's metadata; pip install 'setuptools>=75,<81' "
            "in that venv, which Odoo does not pin).")


def drop_own() -> None:
    """Drop the templates this process built."""
    for name in sorted(_own):
        with _locked(name):
            drop(name)
        _own.discard(name)


atexit.register(drop_own)
