"""A store a Unix group shares (``init --shared``), tried by two real users of one group
(issue 22, case 3): made by the test with ``useradd`` and removed after; it needs root."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, require

TOOLS = ("useradd", "groupadd", "userdel", "groupdel", "runuser")


@dataclass
class Member:
    name: str
    uid: int
    home: Path


@dataclass
class Group:
    """Two members of one group, a directory both reach, and how to run things as each."""

    root: Path
    """The store (the owner made it there with ``init --shared``)."""
    work: Path
    owner: Member
    member: Member
    python: str

    def run(self, who: Member, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(who.home),
            "PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]]),
            "SCALEMS_STORE": str(self.root),
            "SCALEMS_STORE_FSYNC": "0",
        }
        return subprocess.run(
            [shutil.which("runuser") or "runuser", "-u", who.name, "--", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.work,
            timeout=120,
        )

    def store(self, who: Member, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(who, self.python, "-m", "scalems_store", *args)

    def call(self, who: Member, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(who, self.python, "-m", "scalems_call.cmdline.console", *args)

    def py(self, who: Member, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(who, self.python, "-c", code)

    def sh(self, who: Member, command: str) -> subprocess.CompletedProcess[str]:
        return self.run(who, "/bin/sh", "-c", command)


def _missing() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "making Unix users needs root on Linux"
    lacking = [tool for tool in TOOLS if shutil.which(tool) is None]
    return f"no {', '.join(lacking)} to make Unix users" if lacking else None


def _python_for(user: str) -> str | None:
    """An interpreter *user* may run that has this one's version (this one may live
    in root's home)."""
    for python in (sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        ran = subprocess.run(
            ["runuser", "-u", user, "--", python, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if ran.returncode == 0 and ran.stdout.strip() == str(tuple(sys.version_info[:2])):
            return python
    return None


@pytest.fixture
def group() -> Iterator[Group]:
    require(_missing())
    tag = os.urandom(3).hex()
    names = {"group": f"smg{tag}", "owner": f"smo{tag}", "member": f"smm{tag}"}
    base = Path(tempfile.mkdtemp(prefix="scalems-shared-", dir="/tmp"))
    made: list[list[str]] = []
    try:
        subprocess.run(["groupadd", names["group"]], check=True, capture_output=True)
        made.append(["groupdel", names["group"]])
        members = []
        for role in ("owner", "member"):
            home = base / role  # runuser sets HOME from the passwd entry: this one
            home.mkdir()
            subprocess.run(
                ["useradd", "-M", "-N", "-d", str(home), "-g", names["group"], names[role]],
                check=True,
                capture_output=True,
            )
            made.insert(0, ["userdel", names[role]])
            uid = int(subprocess.check_output(["id", "-u", names[role]]))
            os.chown(home, uid, -1)
            home.chmod(0o700)
            members.append(Member(names[role], uid, home))
        base.chmod(0o755)
        work = base / "work"
        work.mkdir(mode=0o777)
        work.chmod(0o777)
        python = _python_for(names["owner"])
        require(None if python else f"no Python {sys.version_info[:2]} the test users may run")
        assert python is not None
        yield Group(work / "store", work, members[0], members[1], python)
    finally:
        for command in made:
            subprocess.run(command, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_members_cannot_touch_each_others_files(group: Group) -> None:
    """No member may delete, rename, replace or write another's objects, labels, refs or
    meta files; a label of another member is refused in one line."""
    owner, member = group.owner, group.member
    ok(group.sh(owner, init_as_documented(group)))
    mode = group.root.stat().st_mode
    assert mode & stat.S_ISGID and mode & stat.S_ISVTX and mode & stat.S_IWGRP
    (group.work / "a.txt").write_text("owner's\n")
    blob = ok(group.store(owner, "add", "a.txt", "--label", "kept"))
    call = ok(group.call(owner, "pack", "tests.scalems_call.funcs:add", "--args-json", "[1, 2]"))
    ok(group.call(owner, "exec", call))
    obj = group.root / "objects" / blob[:2] / blob[2:]
    label = group.root / "refs" / "labels" / "kept"
    [ref] = (group.root / "refs" / "calls" / call[:2]).iterdir()
    meta = next((group.root / "meta" / call[:2]).iterdir())
    assert ref.name == f"{call[2:]}~{owner.uid}" and ref.stat().st_uid == owner.uid
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    (group.work / "b.txt").write_text("member's\n")
    theirs = group.work / "b.txt"
    for path in (obj, label, ref, meta):
        before = path.read_bytes()
        refused(group.sh(member, f"rm -f {path}"))
        refused(group.sh(member, f"mv {theirs} {path}"))
        refused(group.sh(member, f"mv {path} {path}.moved"))
        refused(group.sh(member, f"printf x >> {path}"))
        assert path.read_bytes() == before
    line = refused(group.store(member, "label", "kept", call))
    assert line.strip().endswith(
        f"label 'kept' belongs to {owner.name}, another member of this shared store"
    )
    refused(group.store(member, "label", "--remove", "kept"))
    assert ok(group.store(owner, "info", "kept")).splitlines()[0].endswith(blob)


def test_a_members_result_never_replaces_anothers(group: Group) -> None:
    """A member who records a result with a crafted pickle on another's call writes only a
    ref file of its own; the other's exec and result go on serving their own result, and
    nothing of the crafted pickle runs."""
    owner, member = group.owner, group.member
    ok(group.store(owner, "init", "--shared", group_name(group)))
    call = ok(group.call(owner, "pack", "tests.scalems_call.funcs:add", "--args-json", "[1, 2]"))
    mine = ok(group.call(owner, "exec", call))
    pwned = group.work / "pwned"
    evil = pickle.dumps(_Evil(str(pwned))).hex()
    forged = ok(
        group.py(
            member,
            "import json, sys\n"
            "from scalems_store import FileStore\n"
            f"s = FileStore({str(group.root)!r})\n"
            f"r = json.loads(s.read_bytes({mine!r}))\n"
            f"r['return_value'] = {evil!r}\n"
            "fp = s.add_bytes(json.dumps(r, sort_keys=True).encode(), kind='result')\n"
            f"s.update_ref('calls', {call!r}, lambda known: [fp, *known])\n"
            "print(fp)\n",
        )
    )
    files = sorted((group.root / "refs" / "calls" / call[:2]).iterdir())
    assert [f.stat().st_uid for f in files] == sorted([owner.uid, member.uid])
    owners = {f.stat().st_uid: f.read_text().split() for f in files}
    assert owners[owner.uid] == [mine] and owners[member.uid][0] == forged
    assert ok(group.call(owner, "exec", call)) == mine
    shown = json.loads(ok(group.call(owner, "result", call, "--json")))
    assert shown["return_value_repr"] == "3"
    assert not pwned.exists()
    # both record results of the same call, each in a file of its own
    again = ok(group.call(member, "exec", "--force", call))
    assert again != mine
    assert (group.root / "refs" / "calls" / call[:2] / f"{call[2:]}~{owner.uid}").read_text() == (
        mine + "\n"
    )


def test_gc_of_a_member_removes_only_its_own(group: Group) -> None:
    """A member's gc --grace 0 removes its own unreferenced objects, nothing another
    member stored; the owner's gc removes every unreferenced object; verify passes."""
    owner, member = group.owner, group.member
    ok(group.store(owner, "init", "--shared", group_name(group)))
    call = ok(group.call(owner, "pack", "tests.scalems_call.funcs:add", "--args-json", "[2, 3]"))
    ok(group.call(owner, "exec", call))
    (group.work / "loose-a").write_text("owner's, unreferenced\n")
    (group.work / "loose-b").write_text("member's, unreferenced\n")
    loose_a = ok(group.store(owner, "add", "loose-a"))
    loose_b = ok(group.store(member, "add", "loose-b"))
    before = set(ok(group.store(owner, "ls")).split())
    collected = group.store(member, "gc", "--grace", "0")
    assert ok(collected).split() == [loose_b]
    assert "and 1 that other members of this shared store own" in collected.stderr
    assert set(ok(group.store(owner, "ls")).split()) == before - {loose_b}
    assert ok(group.store(owner, "verify")) == ""
    ok(group.store(member, "add", "loose-b"))
    assert sorted(ok(group.store(owner, "gc", "--grace", "0")).split()) == sorted(
        [loose_a, loose_b]
    )
    assert ok(group.call(owner, "exec", call))


def init_as_documented(group: Group) -> str:
    """The commands of docs/scale.md's "A store a group shares", for this group's store."""
    text = (REPO / "docs" / "scale.md").read_text()
    found = re.search(r"^## A store a group shares\n(.*?)(?=^## )", text, re.S | re.M)
    assert found
    [code] = re.findall(r"^```sh\n(.*?)^```", found.group(1), re.S | re.M)
    for old, new in {
        "scalems-store": f"{group.python} -m scalems_store",
        "/project/store": str(group.root),
        "myproject": group_name(group),
    }.items():
        assert old in code
        code = code.replace(old, new)
    return code


def group_name(group: Group) -> str:
    return group.owner.name.replace("smo", "smg", 1)


class _Evil:
    """Unpickled, it would make a file: proof that a crafted result ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def test_a_member_cannot_make_the_store_trust_his_key(group: Group) -> None:
    """The settings file (the trusted keys) is the owner's from ``init --shared`` on: a
    member can neither add his key to it, nor write, replace or make it first; his own
    results are still signed, beside the owner's, in the shared ``sigs/``."""
    owner, member = group.owner, group.member
    ok(group.store(owner, "init", "--shared", group_name(group)))
    settings = group.root / "config"
    assert settings.stat().st_uid == owner.uid and stat.S_IMODE(settings.stat().st_mode) == 0o644
    key = ok(group.store(member, "key")).strip()
    refused(group.store(member, "trust", "add", key))
    (group.work / "evil").write_text(f'[trust "{key.split(":")[-1]}"]\nname = evil\n')
    refused(group.sh(member, f"mv {group.work / 'evil'} {settings}"))
    refused(group.sh(member, f"printf x >> {settings}"))
    assert key not in ok(group.store(owner, "trust", "list"))
    call = ok(group.call(owner, "pack", "tests.scalems_call.funcs:add", "--args-json", "[2, 3]"))
    ok(group.call(member, "exec", call))
    sigs = list((group.root / "sigs").rglob("*"))
    assert [p for p in sigs if p.is_file() and p.stat().st_uid == member.uid]
