"""docs/workflow.md names the state machine's states as they are: every state of
statemachine/migration.asl.json (nested Maps included; a "... (distributed)" copy counts as its
inline original) is mentioned, and every state name the doc writes in italics exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "workflow.md"
DISTRIBUTED = " (distributed)"


def state_names(states: dict[str, Any]) -> Iterator[str]:
    for name, state in states.items():
        yield name
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from state_names(state[key]["States"])
        for branch in state.get("Branches", []):
            yield from state_names(branch["States"])


def _names() -> set[str]:
    definition = json.loads((ROOT / "statemachine" / "migration.asl.json").read_text())
    return set(state_names(definition["States"]))


def test_every_state_of_the_definition_is_in_the_doc() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = {n.removesuffix(DISTRIBUTED) for n in _names()}
    missing = sorted(n for n in names if n not in text)
    assert not missing, f"docs/workflow.md does not mention the states {missing}"


def test_every_state_the_doc_names_in_italics_exists() -> None:
    """*Name* in the doc's state machine section is a state (or a term listed here)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The state machine") : text.index("## Deploying with AWS SAM")]
    unwrapped = section.replace("\n  ", " ")  # a bullet's wrapped lines
    italic = set(re.findall(r"(?<![*\w])\*([A-Z][^*\n]+?)\*(?![*\w])", unwrapped))
    not_states = {"Start execution"}  # the console's button
    unknown = sorted(italic - _names() - not_states)
    assert not unknown, f"docs/workflow.md names states the definition does not have: {unknown}"
