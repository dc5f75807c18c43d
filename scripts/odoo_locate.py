"""Find the Odoo servers the addons' tests run on (used by odoo-tests.sh and tests/odoo).

Nothing about this machine is baked in. Per series N (18, 19) an Odoo comes from, in order:

1. ``ODOO<N>_PATH``: a server checkout holding ``odoo-bin``; its Python is ``ODOO<N>_PYTHON``,
   else the ``bin/python`` of ``ODOO<N>_VENV``, else ``python3``.
2. ``ODOO<N>_VENV`` (a virtualenv) or ``ODOO<N>_PYTHON`` alone: a Python in which ``import odoo``
   works (an Odoo installed with ``pip install -e <checkout>``, say); the server is found from
   the package's location.

Each variable may also be set in a per-user file, ``$XDG_CONFIG_HOME/plane-connector/odoo.env``
(``~/.config/...``; another file with ``PLANE_CONNECTOR_ODOO_ENV``), as ``NAME=value`` lines:
the way to point every run on a machine at its Odoo checkouts. The environment wins over the file.

A candidate counts only when its Python really imports that Odoo and reports the expected
major version; otherwise the reason is printed, so "no Odoo found" is never silent.

    python3 scripts/odoo_locate.py            # one line per Odoo found: SERIES<TAB>DIR<TAB>PYTHON
    python3 scripts/odoo_locate.py --explain  # also why each series was or was not found
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SERIES = ("18", "19")

# Printed by the probe in the candidate's own Python: where odoo lives and its major version.
# odoo.__path__, not __file__: 19.0's odoo is a namespace package (no __init__.py, no __file__).
_PROBE = (
    "import os, odoo, odoo.release as r; "
    "print(os.path.dirname(os.path.abspath(list(odoo.__path__)[0]))); "
    "print(r.version_info[0])"
)


@dataclass(frozen=True)
class Odoo:
    series: str
    path: Path  # the directory holding odoo-bin (the server checkout)
    python: str

    @property
    def addons_dirs(self) -> list[Path]:
        return [d for d in (self.path / "addons", self.path / "odoo" / "addons") if d.is_dir()]


def config_file(environ: dict[str, str]) -> Path:
    explicit = environ.get("PLANE_CONNECTOR_ODOO_ENV")
    if explicit:
        return Path(explicit)
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "plane-connector" / "odoo.env"


def settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The ODOO* variables from the per-user file, overridden by the environment."""
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, str] = {}
    path = config_file(environ)
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            name, _, value = line.partition("=")
            name = name.strip().removeprefix("export ").strip()
            if name.startswith("ODOO"):
                parts = shlex.split(value, comments=True)
                merged[name] = parts[0] if parts else ""
    merged.update({k: v for k, v in environ.items() if k.startswith("ODOO")})
    return merged


def _probe(python: str, cwd: Path | None) -> tuple[Path, str] | str:
    """(server dir, major version) as seen by ``python``, or why it could not tell."""
    if not (Path(python).is_file() or "/" not in python):
        return f"no Python at {python}"
    try:
        out = subprocess.run(
            [python, "-c", _PROBE], cwd=cwd, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} did not run: {exc}"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return f"{python} cannot import odoo ({last})"
    where, version = out.stdout.split()[-2:]
    return Path(where), version


def locate(series: str, values: dict[str, str]) -> Odoo | str:
    """The Odoo for one series, or the reason there is none."""
    path = values.get(f"ODOO{series}_PATH")
    venv = values.get(f"ODOO{series}_VENV")
    python = values.get(f"ODOO{series}_PYTHON") or (
        str(Path(venv) / "bin" / "python") if venv else ""
    )
    if path:
        server = Path(path).expanduser()
        if not (server / "odoo-bin").is_file():
            return f"ODOO{series}_PATH={path} holds no odoo-bin"
        # odoo-bin puts its own directory first on sys.path; the probe does the same via cwd.
        found = _probe(python or "python3", server)
    elif python:
        found = _probe(python, None)
    else:
        return f"not configured (ODOO{series}_PATH, ODOO{series}_VENV or ODOO{series}_PYTHON)"
    if isinstance(found, str):
        return found
    server, version = found
    if version != series:
        return f"{server} is Odoo {version}, not {series}"
    if not (server / "odoo-bin").is_file():
        return f"{server} (from {python}) holds no odoo-bin"
    return Odoo(series, server, python or "python3")


def find_all(series: tuple[str, ...] = SERIES, environ: dict[str, str] | None = None
             ) -> tuple[list[Odoo], dict[str, str]]:
    """(Odoo servers found, reason per series not found)."""
    values = settings(environ)
    found: list[Odoo] = []
    missing: dict[str, str] = {}
    for s in series:
        result = locate(s, values)
        if isinstance(result, Odoo):
            found.append(result)
        else:
            missing[s] = result
    return found, missing


def configured(series: tuple[str, ...] = SERIES, environ: dict[str, str] | None = None
               ) -> list[str]:
    """The series this machine names an Odoo for (found or not): what CI then requires."""
    values = settings(environ)
    return [s for s in series
            if any(values.get(f"ODOO{s}_{kind}") for kind in ("PATH", "VENV", "PYTHON"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default=" ".join(SERIES),
                        help="which series to look for (default: 18 19)")
    parser.add_argument("--explain", action="store_true",
                        help="say on stderr where each series was looked for")
    parser.add_argument("--configured", action="store_true",
                        help="only print the series configured here (found or not), on one line")
    args = parser.parse_args(argv)
    wanted = tuple(args.series.replace(",", " ").split())
    if args.configured:
        print(" ".join(configured(wanted)))
        return 0
    found, missing = find_all(wanted)
    for odoo in found:
        print(f"{odoo.series}\t{odoo.path}\t{odoo.python}")
    if args.explain:
        where = config_file(dict(os.environ))
        for s, why in missing.items():
            print(f"no Odoo {s}.0: {why}", file=sys.stderr)
        if missing:
            print(f"(variables may also be set in {where})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
