"""A chapter's parameters, picked by name from the notebook's namespace (its tagged ``parameters`` cell, after
papermill injected the stage's values)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def pick(namespace: Mapping[str, Any], names: Iterable[str], chapter: str) -> dict[str, Any]:
    """``{name: namespace[name]}`` for each of ``names``, in their order; a name the namespace lacks is a one-line
    NameError naming it and the chapter (run the chapter's ``parameters`` cell first)."""
    out = {}
    for name in names:
        if name not in namespace:
            raise NameError(f"chapter {chapter} needs its parameter '{name}', which is not defined: run the chapter's "
                        f"parameters cell first")
        out[name] = namespace[name]
    return out
