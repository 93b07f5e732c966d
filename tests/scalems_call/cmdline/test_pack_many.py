"""``scalems-call pack --many``: one call a JSON line, from a file or stdin."""

from __future__ import annotations

import json
from pathlib import Path

from scalems_call import output, pack
from scalems_store import FileStore
from tests.conftest import RunCli
from tests.scalems_call import funcs
from tests.scalems_store.cli.test_store_cli import one_line_error

ADD = "tests.scalems_call.funcs:add"


def lines(*calls: object) -> bytes:
    return "".join(json.dumps(call) + "\n" for call in calls).encode()


def test_pack_many_prints_a_fingerprint_a_line_in_order(run_cli: RunCli, tmp_path: Path) -> None:
    """Each line is packed as pack() packs the same call; the fingerprints come in order,
    from stdin or a file, blank lines skipped; --env applies to every line."""
    calls = [{"args": [i, 1]} for i in range(5)] + [{"args": [7], "kwargs": {"b": 2}}]
    given = lines(*calls)
    (tmp_path / "calls.jsonl").write_bytes(given.replace(b"\n", b"\n\n", 1))
    from_stdin = run_cli("scalems-call", "pack", ADD, "--many", "-", "--env", "V=1", input=given)
    assert from_stdin.returncode == 0, from_stdin.stderr
    from_file = run_cli("scalems-call", "pack", ADD, "--many", "calls.jsonl", "--env", "V=1")
    assert from_file.stdout == from_stdin.stdout
    with FileStore(tmp_path / ".scalems") as store:
        expected = [pack(funcs.add, (i, 1), store=store, environment={"V": "1"}) for i in range(5)]
        expected.append(pack(funcs.add, (7,), {"b": 2}, store=store, environment={"V": "1"}))
    assert from_stdin.stdout.decode().splitlines() == expected


def test_pack_many_takes_outputs_of_other_calls(run_cli: RunCli, tmp_path: Path) -> None:
    """The ``$output`` form works in a line as it does in --args-json, and the calls of
    the lines run as a graph."""
    with FileStore(tmp_path / ".scalems") as store:
        first = pack(funcs.add, (1, 2), store=store)
        expected = pack(funcs.add, (output(first), 10), store=store)
    done = run_cli(
        "scalems-call", "pack", ADD, "--many", "-", input=lines({"args": [{"$output": first}, 10]})
    )
    assert done.stdout.decode().split() == [expected]
    ran = run_cli("scalems-call", "exec", expected, "--json")
    assert json.loads(ran.stdout)["status"] == "success", ran.stderr


def test_pack_many_bad_line_packs_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    """A bad line is one line on stderr naming its number, and no call is packed (not even
    those of the lines before it): a malformed line is a usage error, a call that does not
    fit the function or names no call is refused as pack refuses it."""
    good = {"args": [1, 2]}
    cases = [
        (b"{not json\n", 2, "line 2"),
        (lines({"args": 3}), 2, "line 2"),
        (lines({"args": [1], "extra": 1}), 2, "line 2"),
        (lines({"args": [1]}), 1, "line 2: arguments do not fit add(a, b)"),
        (lines({"args": [{"$output": "abcd"}, 1]}), 1, "line 2: output('abcd') names no call"),
    ]
    for bad, status, said in cases:
        done = run_cli("scalems-call", "pack", ADD, "--many", "-", input=lines(good) + bad)
        assert done.returncode == status, done.stderr
        assert said in one_line_error(done)
        assert done.stdout == b""
        if (tmp_path / ".scalems").exists():
            with FileStore(tmp_path / ".scalems") as store:
                assert store.list(kind="call") == []


def test_pack_many_refuses_args_json_with_it(run_cli: RunCli) -> None:
    """--many with --args-json is a usage error."""
    done = run_cli("scalems-call", "pack", ADD, "--many", "-", "--args-json", "[1, 2]", input=b"")
    assert done.returncode == 2
    assert "--many" in one_line_error(done)
