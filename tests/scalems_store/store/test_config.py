"""The store's settings file: read and written as people and git write INI files."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalems_store import BadSetting, FileStore
from scalems_store.store.config import Config, section_name


def test_settings_round_trip_and_read_as_written(store: FileStore) -> None:
    """What update() writes, a new Config reads back; the file is plain INI a person edits."""
    config = Config(store.root)
    assert config.get("core", "jobs") is None
    config.update("core", {"jobs": "4"})
    config.update(section_name("remote", "cluster"), {"url": "ssh://host/path"})
    again = Config(store.root)
    assert again.get("core", "jobs") == "4"
    assert list(again.sections("remote")) == [("cluster", {"url": "ssh://host/path"})]
    text = Path(store.root, "config").read_text()
    assert '[remote "cluster"]' in text and "url = ssh://host/path" in text
    # edited by hand: read as written
    Path(store.root, "config").write_text(text.replace("4", "8"))
    assert Config(store.root).get("core", "jobs") == "8"


def test_removing_a_key_or_section(store: FileStore) -> None:
    """A key set to None goes; a section left empty goes; remove_section says if it was there."""
    config = Config(store.root)
    config.update("core", {"jobs": "2", "default-remote": "a"})
    config.update("core", {"jobs": None})
    assert Config(store.root).get("core", "jobs") is None
    assert config.remove_section("core") is True
    assert config.remove_section("core") is False
    assert "core" not in Path(store.root, "config").read_text()


def _bump(root: str, key: str) -> None:
    for number in range(20):
        Config(root).update("core", {f"{key}-{number}": str(number)})


def test_concurrent_updates_lose_nothing(store: FileStore) -> None:
    """Four processes adding keys at once: every key is in the file at the end."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_bump, args=(store.root, f"k{i}")) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    config = Config(store.root)
    assert all(config.get("core", f"k{i}-{n}") == str(n) for i in range(4) for n in range(20))


def test_a_broken_settings_file_is_one_line(store: FileStore) -> None:
    """Garbage, a bad header or a FIFO in place of the file: BadSetting naming it, no hang."""
    path = Path(store.root, "config")
    for bad in ("no section here\n", "[remote origin]\nurl = x\n", "[core\n"):
        path.write_text(bad)
        with pytest.raises(BadSetting, match="settings file") as caught:
            Config(store.root)
        assert "\n" not in str(caught.value)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(BadSetting, match="not a regular file"):
        Config(store.root)


@pytest.mark.parametrize("header", ["Core", "remote ", 'remote "a"b', "", 'remote "x\ny"'])
def test_bad_section_names_are_refused(header: str) -> None:
    """A section name that could not be read back is refused before anything is written."""
    name, _, sub = header.partition(" ")
    with pytest.raises(BadSetting):
        section_name(name, sub.strip('"') if sub else None) if sub else section_name(header)


CONTROLS = "".join(map(chr, range(32))) + "\x7f"


@settings(max_examples=40, deadline=None)
@given(
    sub=st.text(st.characters(codec="utf-8", exclude_characters='"\n\r'), min_size=1),
    value=st.text(st.characters(codec="utf-8", exclude_characters=CONTROLS), max_size=40).map(
        str.strip
    ),
)
def test_any_remote_name_and_value_round_trip(tmp_path_factory: pytest.TempPathFactory,
                                               sub: str, value: str) -> None:  # fmt: skip
    """Any remote name without quotes or newlines, and any one-line value, read back as set."""
    root = tmp_path_factory.mktemp("store")
    os.makedirs(root / "tmp")
    if sub != sub.strip() or not sub.isprintable():
        with pytest.raises(BadSetting):
            section_name("remote", sub)
        return
    Config(str(root)).update(section_name("remote", sub), {"url": value})
    assert dict(Config(str(root)).sections("remote")) == {sub: {"url": value}}
