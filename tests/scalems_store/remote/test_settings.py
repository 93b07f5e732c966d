"""Remotes are named in the store's settings file, as git names its remotes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalems_store import BadSetting, FileStore
from scalems_store.remote import settings
from tests.conftest import RunCli


def test_add_list_remove_and_the_default(store: FileStore, tmp_path: Path) -> None:
    """The first remote added is the default until another is added with default; removing
    the default leaves none; a relative path is kept absolute; the file reads as git's."""
    settings.add(store.root, "disk", str(tmp_path / "other"))
    settings.add(store.root, "far", "ssh://me@host:2222/scratch/store", command="/opt/bin/x")
    assert settings.default_name(store.root) == "disk"
    settings.add(store.root, "bucket", "s3://b/p", default=True, endpoint_url="http://h:9000")
    assert settings.default_name(store.root) == "bucket"
    assert [r.name for r in settings.remotes(store.root)] == ["disk", "far", "bucket"]
    assert settings.find(store.root, None).endpoint_url == "http://h:9000"
    assert settings.find(store.root, "far").command == "/opt/bin/x"
    text = Path(store.root, "config").read_text()
    assert '[remote "far"]\nurl = ssh://me@host:2222/scratch/store' in text
    assert "default-remote = bucket" in text
    settings.remove(store.root, "bucket")
    assert settings.default_name(store.root) is None
    with pytest.raises(BadSetting, match="no default remote"):
        settings.find(store.root, None)
    assert settings.find(store.root, "disk").url == str(tmp_path / "other")


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("-x", "/p", "not a remote name"),
        ("a b", "/p", "not a remote name"),
        ("ok", "ftp://h/p", "unknown remote URL scheme"),
        ("ok", "ssh://host", "names no path"),
        ("ok", "s3:///p", "names no host"),
        ("ok", "file://elsewhere/p", "local path"),
        ("ok", "", "cannot be empty"),
    ],
)
def test_bad_names_and_urls_are_refused(
    store: FileStore, name: str, url: str, message: str
) -> None:
    """A bad name or URL is one BadSetting naming what is wrong; nothing is written."""
    with pytest.raises(BadSetting, match=message):
        settings.add(store.root, name, url)
    assert settings.remotes(store.root) == []


def test_names_are_unique_and_removing_an_unknown_one_says_so(store: FileStore) -> None:
    """Adding a name twice or removing one never added is an error, the file unchanged."""
    settings.add(store.root, "a", "/x")
    with pytest.raises(BadSetting, match="exists already"):
        settings.add(store.root, "a", "/y")
    with pytest.raises(BadSetting, match="no remote named 'b'"):
        settings.remove(store.root, "b")
    assert settings.find(store.root, "a").url == "/x"


def test_remote_commands(run_cli: RunCli, tmp_path: Path) -> None:
    """remote add/list/remove on the command line: list marks the default; a mistake is
    one line and exit 1 (a usage error exit 2)."""
    env = {"SCALEMS_STORE": str(tmp_path / "s")}
    assert run_cli("scalems-store", "remote", "add", "a", "file:///data/a", env=env).returncode == 0
    done = run_cli("scalems-store", "remote", "add", "b", "s3://bkt/x", "--default", env=env)
    assert done.returncode == 0 and b"(default)" in done.stderr
    listed = run_cli("scalems-store", "remote", "list", env=env)
    assert listed.stdout.decode().splitlines() == ["  a\t/data/a", "* b\ts3://bkt/x"]
    as_json = run_cli("scalems-store", "remote", "list", "--json", env=env)
    assert b'"default": true' in as_json.stdout and b'"url": "/data/a"' in as_json.stdout
    bad = run_cli("scalems-store", "remote", "add", "c", "gopher://x/y", env=env)
    assert bad.returncode == 1 and bad.stderr.count(b"\n") == 1 and b"BadSetting" in bad.stderr
    assert run_cli("scalems-store", "remote", "add", "c", env=env).returncode == 2
    assert run_cli("scalems-store", "remote", "remove", "b", env=env).returncode == 0
    listed = run_cli("scalems-store", "remote", "list", env=env)
    assert listed.stdout.decode().splitlines() == ["  a\t/data/a"]
