"""The OS keychain for the keyring: tests: gnome-keyring's Secret Service, for real.

On Linux the keychain is the Secret Service (freedesktop.org); gnome-keyring-daemon provides it
and keyring reaches it through SecretStorage/jeepney over the D-Bus session bus. Each service
started here is a real daemon on a bus of its own, with its own XDG directories: the user's
session and keychain are never touched. The fixtures using it are in conftest.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Set by ./dev.sh test when it has the packages: a backend that cannot be had then fails the run
# instead of skipping, so CI cannot go green without the real keychain having been exercised.
REQUIRE_SECRET_SERVICE_ENV = "PLANE_REQUIRE_SECRET_SERVICE"
SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"
THROWAWAY_PASSWORD = "throwaway-" + uuid.uuid4().hex  # unlocks the test login keyring only

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={sockets}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
# gnome-keyring asks this service for a locked collection's password (gcr-prompter, a GTK
# dialog). It is the only service the private bus can start.
_PROMPTER_SERVICE = "[D-BUS Service]\nName={name}\nExec={exe}\n"
_PROMPTER = "/usr/libexec/gcr-prompter"
PROMPTER_NAME = "org.gnome.keyring.SystemPrompter"


def secret_service_unavailable(reason: str) -> None:
    """Skip (or, under ./dev.sh test, fail) a test that needs the real keychain."""
    message = (
        f"no Secret Service (OS keychain) for the keyring: tests: {reason}. On Debian: apt-get "
        "install gnome-keyring dbus libsecret-tools xvfb (./dev.sh test does it when run as root)"
    )
    if os.environ.get(REQUIRE_SECRET_SERVICE_ENV) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _die_with_parent() -> None:
    # A daemon must not outlive a test run killed with SIGKILL (no fixture teardown then).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(argv: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            argv, stderr=err, start_new_session=True, preexec_fn=_die_with_parent, **kw
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_line(fd: int, what: str, proc: subprocess.Popen[bytes], deadline: float) -> str:
    """The first line a daemon writes on ``fd`` (its bus address, its display number)."""
    data = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while b"\n" not in data:
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise RuntimeError(f"{what} did not start")
            chunk = pipe.read(4096)
            if not chunk:
                raise RuntimeError(f"{what} exited with status {proc.wait()}")
            data += chunk
    return data.decode().splitlines()[0].strip()


class SecretService:
    """gnome-keyring-daemon serving the Secret Service on a private session bus, its login
    keyring created and unlocked with a throwaway password (fed on stdin, as PAM does).

    ``display`` (an X display) lets the daemon's unlock prompt really open there; without one
    the prompter cannot start, as on a headless server.
    """

    def __init__(self, root: Path, display: str | None = None) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""
        try:
            self._start(display)
        except BaseException:
            self.close()
            raise

    def _start(self, display: str | None) -> None:
        root = self.root
        for sub in ("sockets", "services", "home", "runtime"):
            (root / sub).mkdir(mode=0o700)
        services = root / "services"
        if os.access(_PROMPTER, os.X_OK):
            unit = _PROMPTER_SERVICE.format(name=PROMPTER_NAME, exe=_PROMPTER)
            (services / "prompter.service").write_text(unit)
        config = root / "bus.conf"
        config.write_text(_BUS_CONFIG.format(sockets=root / "sockets", services=services))
        home = root / "home"
        # What the daemons (and the prompter the bus starts) see: nothing of the caller's session.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_RUNTIME_DIR": str(root / "runtime"),
            "NO_AT_BRIDGE": "1",  # GTK would start an accessibility bus of its own
            "GSETTINGS_BACKEND": "memory",
        }
        if display:
            env["DISPLAY"] = display
        deadline = time.monotonic() + 30
        read_end, write_end = os.pipe()
        bus = _spawn(
            ["dbus-daemon", f"--config-file={config}", "--nofork", f"--print-address={write_end}"],
            root / "dbus.log", env=env, pass_fds=(write_end,), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(bus)
        os.close(write_end)
        self.address = _read_line(read_end, "dbus-daemon", bus, deadline)
        env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        daemon = _spawn(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            root / "gnome-keyring.log", env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(daemon)
        assert daemon.stdin is not None
        daemon.stdin.write(THROWAWAY_PASSWORD.encode())
        daemon.stdin.close()  # EOF ends the password
        self._wait_for_login_keyring(daemon, deadline)

    def _wait_for_login_keyring(self, daemon: subprocess.Popen[bytes], deadline: float) -> None:
        import secretstorage

        while True:
            if daemon.poll() is not None:
                log = (self.root / "gnome-keyring.log").read_text(errors="replace")
                raise RuntimeError(f"gnome-keyring-daemon exited ({daemon.returncode}): {log}")
            with contextlib.closing(dbus_connect(self.address)) as conn:
                try:
                    if not secretstorage.get_default_collection(conn).is_locked():
                        return
                except secretstorage.exceptions.SecretStorageException:
                    pass  # not on the bus yet, or the login keyring not created yet
            if time.monotonic() > deadline:
                raise RuntimeError("gnome-keyring-daemon did not unlock its login keyring")
            time.sleep(0.02)

    def default_collection(self) -> Any:
        """The collection keyring's SecretService backend uses, on a fresh connection."""
        import secretstorage

        return secretstorage.get_default_collection(dbus_connect(self.address))

    def close(self) -> None:
        if self.address:
            with contextlib.suppress(Exception):
                self._stop_activated(PROMPTER_NAME)
        for proc in reversed(self.procs):
            _stop(proc)

    def _stop_activated(self, name: str) -> None:
        # A service the bus started (the prompter) is the bus's child: stopped while the bus is
        # still up, the bus reaps it; otherwise it would stay behind as a zombie.
        from jeepney import DBus

        with contextlib.closing(dbus_connect(self.address)) as conn:
            bus = DBus()
            if not conn.send_and_get_reply(bus.NameHasOwner(name)).body[0]:
                return
            pid = conn.send_and_get_reply(bus.GetConnectionUnixProcessID(name)).body[0]
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if not conn.send_and_get_reply(bus.NameHasOwner(name)).body[0]:
                    return
                time.sleep(0.05)


def dbus_connect(address: str) -> Any:
    from jeepney.io.blocking import open_dbus_connection

    return open_dbus_connection(address)


def _secret_service_prerequisites() -> None:
    for exe in ("dbus-daemon", "gnome-keyring-daemon"):
        if not shutil.which(exe):
            secret_service_unavailable(f"{exe} not found")
    for module in ("keyring", "secretstorage", "jeepney"):
        try:
            __import__(module)
        except ImportError:
            secret_service_unavailable(f"the Python package {module!r} is not installed")


@contextlib.contextmanager
def running_secret_service(display: str | None = None) -> Iterator[SecretService]:
    """A fresh Secret Service; the caller's D-Bus session address points at it meanwhile."""
    _secret_service_prerequisites()
    root = Path(tempfile.mkdtemp(prefix="plane-keychain-"))
    service = None
    previous = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    try:
        try:
            service = SecretService(root, display)
        except RuntimeError as exc:
            secret_service_unavailable(str(exc))
        assert service is not None
        # keyring's backend and every subprocess find the bus through this variable.
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = service.address
        yield service
    finally:
        if previous is None:
            os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = previous
        if service is not None:
            service.close()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def current_backend() -> Iterator[None]:
    """keyring's SecretService backend made current (what keyring picks on a Linux desktop)."""
    import keyring
    from keyring.backends import SecretService as backend

    previous = keyring.get_keyring()
    keyring.set_keyring(backend.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@contextlib.contextmanager
def x_display(logs: Path) -> Iterator[str]:
    """A real X server (Xvfb), for an unlock prompt that nobody will answer."""
    if not shutil.which("Xvfb"):
        secret_service_unavailable("Xvfb not found (needed to show the unlock prompt)")
    if not os.access(_PROMPTER, os.X_OK):
        secret_service_unavailable(f"{_PROMPTER} not found (Debian package gcr)")
    read_end, write_end = os.pipe()
    xvfb = _spawn(
        ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-screen", "0", "640x480x24"],
        logs / "xvfb.log", pass_fds=(write_end,), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    try:
        yield ":" + _read_line(read_end, "Xvfb", xvfb, time.monotonic() + 30)
    finally:
        _stop(xvfb)


def prompter_comes_up(service: SecretService, within: float = 30.0) -> bool:
    """Whether gcr-prompter (the unlock dialog) is, or within ``within`` s gets, on the bus."""
    from jeepney import DBus

    deadline = time.monotonic() + within
    with contextlib.closing(dbus_connect(service.address)) as conn:
        while True:
            reply = conn.send_and_get_reply(DBus().NameHasOwner(PROMPTER_NAME))
            if reply.body[0] or time.monotonic() > deadline:
                return bool(reply.body[0])
            time.sleep(0.05)  # a slow machine may still be starting GTK
