"""Print a digest of everything the wheel is built from (Rust sources, Cargo files, the Python
package, pyproject.toml, README.md), so ``dist/`` can say which tree its wheel came from.

``./dev.sh dist`` writes it to ``dist/TREE``; ``./dev.sh test`` and tests/dist rebuild the wheel
only when the tree's digest differs.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

INPUTS = ["Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md", "src", "python"]


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for name in INPUTS:
        base = root / name
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for path in files:
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in {".so", ".pyc"}:
                continue
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


if __name__ == "__main__":
    print(digest(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
