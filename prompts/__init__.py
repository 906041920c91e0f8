"""Prompts: one Markdown template per prompt and their loader.

Templates use `{placeholder}` fields only (no logic); literal braces are doubled. `render` fails
on a missing or an unused variable so a renamed placeholder cannot silently drop text.
"""

from __future__ import annotations

import hashlib
import string
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent


class PromptError(ValueError):
    """A prompt is unknown or was rendered with the wrong variables."""


def prompt_names() -> list[str]:
    """Return the names of every prompt shipped in this package, sorted."""
    return sorted(p.name.removesuffix(".md") for p in PROMPTS_DIR.glob("*.md"))


@cache
def load_prompt(name: str) -> str:
    """Return the raw template text of prompt `name` (file `prompts/<name>.md`).

    Args:
        name: Prompt name without the `.md` suffix, e.g. `broker.system`.

    Raises:
        PromptError: No such prompt file.
    """
    path = PROMPTS_DIR / f"{name}.md"
    if "/" in name or "\\" in name or not path.is_file():
        raise PromptError(f"unknown prompt {name!r}; expected one of {prompt_names()}")
    return path.read_text(encoding="utf-8")


def placeholders(name: str) -> set[str]:
    """Return the placeholder names used by prompt `name`."""
    fields = set()
    for _literal, field, _spec, _conv in string.Formatter().parse(load_prompt(name)):
        if field is not None:
            if not field.isidentifier():
                raise PromptError(
                    f"prompt {name!r} has placeholder {field!r}; use plain identifiers only"
                )
            fields.add(field)
    return fields


def render(name: str, **variables: object) -> str:
    """Render prompt `name` with exactly its placeholders.

    Args:
        name: Prompt name without the `.md` suffix.
        **variables: One value per placeholder in the template.

    Raises:
        PromptError: A placeholder has no value, or a value has no placeholder.
    """
    expected = placeholders(name)
    missing = sorted(expected - variables.keys())
    unused = sorted(variables.keys() - expected)
    if missing:
        raise PromptError(f"prompt {name!r} is missing variables {missing}; pass them to render()")
    if unused:
        raise PromptError(
            f"prompt {name!r} does not use variables {unused}; remove them or add placeholders"
        )
    return load_prompt(name).format(**variables)


def prompt_hash(name: str) -> str:
    """Return a short SHA-256 of the template text, for eval result records."""
    return hashlib.sha256(load_prompt(name).encode("utf-8")).hexdigest()[:16]
