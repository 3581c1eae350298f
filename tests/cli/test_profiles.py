"""Saved logins: whatever a profile holds, the file written reads back the same."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from printfleet.cli.profiles import Profiles

# Any text TOML can hold: every Unicode scalar value (no lone surrogates), control characters
# included, which a hand-written writer has to escape one by one.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@given(
    entries=st.dictionaries(text, st.dictionaries(st.sampled_from(["url", "token"]), text)),
    default=st.none() | text,
)
def test_saved_profiles_read_back_the_same(
    entries: dict[str, dict[str, str]], default: str | None
) -> None:
    saved = Profiles(default or None, entries)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "printfleet" / "client.toml"
        saved.save(path)
        assert Profiles.load(path) == saved
