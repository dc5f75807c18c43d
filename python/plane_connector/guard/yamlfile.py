"""The guard's YAML reader (ssot/secrets/*.yaml): PyYAML's safe loader, duplicate keys refused."""

from __future__ import annotations

from typing import Any

from plane_connector.guard.report import require_extra


class _YamlError(ValueError):
    """Unreadable YAML; ``line`` is 1-based (None when PyYAML gives no position)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


_LOADER: Any = None


def _load_yaml(text: str) -> Any:
    """PyYAML's safe loader, refusing duplicate keys: a reviewed data file is better rejected
    than read with one of two entries silently dropped."""
    global _LOADER  # noqa: PLW0603 - one loader class per process, built on first use
    yaml: Any = require_extra("yaml", "the guard reads ssot/secrets/*.yaml with PyYAML")
    if _LOADER is None:

        class StrictLoader(yaml.SafeLoader):  # type: ignore[misc, name-defined]
            pass

        def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = loader.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return loader.construct_mapping(node, deep)

        StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
        _LOADER = StrictLoader
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _YamlError(str(problem), mark.line + 1 if mark is not None else None) from None
