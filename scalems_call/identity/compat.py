"""The SCALE-MS ``scalems.call`` API: build, (de)serialize and run call records.

``serialize_call`` / ``deserialize_call`` / ``main`` / ``cli`` /
``serialize_result`` / ``deserialize_result`` keep their SCALE-MS behaviour;
records gain ``func_code`` (calls) and ``status`` / ``traceback`` (results).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import pathlib
import sys
import traceback
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from scalems_call.identity.errors import CallError, ImportFailed, InvalidCall, SerializationError
from scalems_call.identity.records import OUTPUTS, CallPack, ResultPack, parse_call, parse_result
from scalems_call.identity.serialize import (
    ENCODER,
    from_hex,
    func_code,
    portable,
    to_bytes,
    to_hex,
)
from scalems_store.core import layout
from scalems_store.core.errors import InvalidFingerprint
from scalems_store.core.layout import canonical

logger = logging.getLogger("scalems_call")


@dataclasses.dataclass
class _Call:
    """Record of a function call to be dispatched (deserialized)."""

    func: Callable[..., Any]
    environment: dict[str, str] | None = dataclasses.field(default_factory=dict)
    skeleton: str | None = None
    args: Sequence[Any] = dataclasses.field(default_factory=tuple)
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: list[str] = dataclasses.field(default_factory=lambda: list(OUTPUTS))
    requirements: dict[str, Any] = dataclasses.field(default_factory=dict)
    decoder: str = dataclasses.field(default=ENCODER)
    encoder: str = dataclasses.field(default=ENCODER)


@dataclasses.dataclass
class CallResult:
    """Result type (container) for a dispatched function call."""

    return_value: Any | None = None
    """Return value, if any."""
    exception: str | None = None
    """String representation (``repr``) of the exception, if the call raised."""
    stdout: str | None = None
    """URI of the captured stdout."""
    stderr: str | None = None
    """URI of the captured stderr."""
    directory: str | None = None
    """URI of the working directory (its tree archive, for calls run from a store)."""
    decoder: str = dataclasses.field(default=ENCODER)
    encoder: str = dataclasses.field(default=ENCODER)
    status: str | None = None
    """``success``, ``failed``, ``error``, ``timeout`` or ``killed`` (calls run from a store)."""
    traceback: str | None = None
    """Formatted traceback of the exception, if any."""
    call: str | None = None
    """Fingerprint of the call record (calls run from a store)."""
    fingerprint: str | None = None
    """Fingerprint of the result record (calls run from a store)."""
    cached: bool = False
    """True when the result was served from the store without running the call."""

    @property
    def stdout_fingerprint(self) -> str | None:
        """Fingerprint of the captured stdout in the store (None if there is none)."""
        return _fingerprint_of(self.stdout)

    @property
    def stderr_fingerprint(self) -> str | None:
        """Fingerprint of the captured stderr in the store (None if there is none)."""
        return _fingerprint_of(self.stderr)

    @property
    def directory_fingerprint(self) -> str | None:
        """Fingerprint of the output directory's tree in the store (None if it was not
        stored: a call run outside a store names its working directory)."""
        return _fingerprint_of(self.directory)


def _fingerprint_of(uri: str | None) -> str | None:
    """The fingerprint a URI names: ``blake3:<hex>``, or the ``file://`` URI of an object
    in a store (``…/objects/ab/cdef…``, its name split after two digits); else None."""
    if uri is None:
        return None
    if uri.startswith(layout.URI_SCHEME):
        return layout.normalize(uri)
    if not uri.startswith("file://"):
        return None
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(uri).path)
    if os.path.basename(os.path.dirname(os.path.dirname(path))) != layout.OBJECTS:
        return None
    try:
        return layout.path_to_oid(path)
    except InvalidFingerprint:
        return None


def build_call(
    func: Callable[..., Any],
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    requirements: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    skeleton: str | None = None,
    environment: Mapping[str, str] | None = None,
    resolve: Callable[[Any], Any] | None = None,
    stable_main: bool = True,
) -> CallPack:
    """Return the call record of ``func(*args, **kwargs)``.

    Args:
        resolve: Resolves the references to other calls' outputs in the arguments
            (see :class:`scalems_call.identity.upstream.Resolver`).
        stable_main: Pickle a function of ``__main__`` independently of where it was
            defined, with the globals it uses (see :func:`serialize.portable`);
            ``serialize_call`` does not, as SCALE-MS did not.

    Raises:
        SerializationError: the function or an argument cannot be serialized
            deterministically, or requirements are not JSON.
        InvalidCall: outputs, environment or requirements are malformed.
    """
    if not callable(func):
        raise InvalidCall(f"{func!r} is not callable")
    outputs = list(OUTPUTS if outputs is None else outputs)
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown:
        raise InvalidCall(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")
    if environment and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
    ):
        raise InvalidCall("environment overrides must map names to strings")
    pack = CallPack(
        func=to_hex(portable(func) if stable_main else func, "function"),
        func_code=func_code(func),
        args=[to_hex(arg, f"argument {number}", resolve) for number, arg in enumerate(args)],
        kwargs={
            key: to_hex(value, f"keyword argument {key!r}", resolve)
            for key, value in (kwargs or {}).items()
        },
        outputs=outputs,
        requirements=dict(requirements or {}),
        skeleton=skeleton,
        environment=dict(environment) if environment else None,
        encoder=ENCODER,
        decoder=ENCODER,
    )
    try:
        canonical(pack)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"requirements must be JSON values: {exc}") from exc
    return pack


def serialize_call(
    func: Callable[..., Any],
    *,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    requirements: dict[str, Any] | None = None,
) -> str:
    """Create a serialized representation of a function call (canonical JSON)."""
    record = build_call(
        func, args=args, kwargs=kwargs, requirements=requirements, stable_main=False
    )
    return canonical(record).decode()


def deserialize_call(
    record: str | bytes | Mapping[str, Any],
    deliver: Callable[[str, str | None], Any] | None = None,
) -> _Call:
    """Deserialize a function call, importing the function where it is referenced.

    Args:
        deliver: Gives, for ``(call, path)``, what a reference to another call's
            output in the arguments stands for; without it references stay
            :class:`scalems_call.identity.upstream.Output` placeholders.

    Raises:
        InvalidCall: the record is malformed.
        ImportFailed: the function's module cannot be imported here.
    """
    pack = dict(record) if isinstance(record, Mapping) else parse_call(record)
    try:
        func = from_hex(pack["func"])
        args = tuple(from_hex(arg, deliver) for arg in pack["args"])
        kwargs = {key: from_hex(value, deliver) for key, value in pack["kwargs"].items()}
    except (ImportError, AttributeError) as exc:
        raise ImportFailed(
            f"cannot load the call's function or arguments here: {exc} (is its module installed, "
            "on PYTHONPATH, or shipped in the skeleton?)"
        ) from exc
    except (ValueError, TypeError, EOFError) as exc:
        raise InvalidCall(f"malformed call record: {exc!r}") from exc
    except Exception as exc:
        raise InvalidCall(f"cannot deserialize the call: {exc!r}") from exc
    return _Call(
        func=func,
        args=args,
        kwargs=kwargs,
        outputs=list(pack.get("outputs") or OUTPUTS),
        environment=pack.get("environment"),
        skeleton=pack.get("skeleton"),
        requirements=pack.get("requirements") or {},
    )


def invoke(call: _Call) -> tuple[Any, BaseException | None, str | None]:
    """Run the call; return ``(return value, exception or None, traceback text or None)``.

    A function that leaves with ``sys.exit`` has not returned: that is a failure
    too, ``SystemExit: the call exited with status 0 without returning`` (or the
    message given to ``sys.exit``), not a process gone without a word.
    """
    try:
        return call.func(*call.args, **call.kwargs), None, None
    except SystemExit as exc:
        code = exc.code
        said = (
            code
            if isinstance(code, str)
            else f"the call exited with status {code or 0} without returning"
        )
        lines = traceback.format_exc().rstrip().splitlines()[:-1]
        return None, SystemExit(said), "\n".join([*lines, f"SystemExit: {said}"]) + "\n"
    except Exception as exc:
        return None, exc, traceback.format_exc()


def main(call: _Call) -> CallResult:
    """Execute the packaged call in the current process and directory; return its result.

    ``directory`` is the working directory's ``file://`` URI; ``exception`` is
    the ``repr`` of what the call raised.
    """
    outputs = [str(output) for output in call.outputs]
    for output in outputs:
        if output not in OUTPUTS:
            warnings.warn(f"Unrecognized output requested: {output}", stacklevel=2)
    cwd = pathlib.Path(os.getcwd())
    logger.info("scalems_call executing %r in working directory %s", call.func, cwd)
    value, exc, text = invoke(call)
    fields: dict[str, Any] = {"directory": cwd.as_uri(), "return_value": value}
    fields = {key: val for key, val in fields.items() if key in outputs}
    return CallResult(
        **fields,
        exception=None if exc is None else repr(exc),
        traceback=text,
        status="success" if exc is None else "failed",
    )


def serialize_result(result: CallResult) -> str:
    """Serialize a :class:`CallResult` as a SCALE-MS ``ResultPack`` (canonical JSON)."""
    if result.encoder != ENCODER or result.decoder != ENCODER:
        raise InvalidCall(f"unsupported encoder {result.encoder!r} (only 'dill')")
    pack = ResultPack(
        return_value=None if result.return_value is None else to_bytes(result.return_value).hex(),
        exception=None if result.exception is None else to_bytes(result.exception).hex(),
        stdout=result.stdout,
        stderr=result.stderr,
        directory=result.directory,
        encoder=ENCODER,
        decoder=ENCODER,
    )
    if result.status is not None:
        pack["status"] = result.status
    if result.traceback is not None:
        pack["traceback"] = result.traceback
    return canonical(pack).decode()


def deserialize_result(stream: str | bytes) -> CallResult:
    """Inverse of :func:`serialize_result`; also reads result records from a store."""
    return result_from_record(parse_result(stream))


def result_from_record(record: Mapping[str, Any], **fields: Any) -> CallResult:
    """A :class:`CallResult` from a parsed result record, the return value and exception
    decoded; *fields* override what the record says (local URIs, fingerprint...)."""
    value = record.get("return_value")
    exception = record.get("exception")
    found: dict[str, Any] = {
        "return_value": None if value is None else from_hex(value),
        "exception": None if exception is None else from_hex(exception),
        "stdout": record.get("stdout"),
        "stderr": record.get("stderr"),
        "directory": record.get("directory"),
        "status": record.get("status"),
        "traceback": record.get("traceback"),
        "call": record.get("call"),
    }
    return CallResult(**{**found, **fields})


def cli(*argv: str) -> int:
    """Command line entry point: ``python -m scalems_call CALL.json RESULT.json``.

    ``argv[0]`` is the program name, as in ``sys.argv``. Returns the exit
    status: 0 on success, 1 if the call raised or could not be loaded.
    """
    parser = argparse.ArgumentParser(
        prog="python -m scalems_call",
        description="Run a serialized function call in the current directory and write its result.",
    )
    parser.add_argument("call", type=pathlib.Path, help="call record (JSON) to execute")
    parser.add_argument("result", type=pathlib.Path, help="where to write the result record (JSON)")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("SCALEMS_CALL_LOG_LEVEL", "WARNING"),
        help="logging level (default: $SCALEMS_CALL_LOG_LEVEL or WARNING)",
    )
    parser.add_argument("--log-file", type=pathlib.Path, help="also log to this file")
    options = parser.parse_args(list(argv[1:]))
    _configure_logging(options.log_level, options.log_file)
    logger.debug("scalems_call got args: %s", ", ".join(argv))
    try:
        call = deserialize_call(options.call.read_bytes())
    except OSError as exc:
        logger.error("cannot read %s: %s", options.call, exc.strerror)
        return 1
    except CallError as exc:
        logger.error("%s: %s", type(exc).__name__, exc)
        return 1
    result = main(call)
    try:
        if _mpi_rank() == 0:  # under MPI every rank runs the call; rank 0's result is kept
            options.result.write_text(serialize_result(result))
    except SerializationError as exc:
        logger.error("%s", exc)
        return 1
    if result.exception is not None:
        logger.error(result.exception)
        return 1
    return 0


def _mpi_rank() -> int:
    """This process's MPI rank; 0 when not run under ``python -m mpi4py``."""
    if "mpi4py" not in sys.modules:
        return 0
    from mpi4py import MPI  # optional, only under MPI

    return int(MPI.COMM_WORLD.Get_rank())


def _configure_logging(level: str, path: pathlib.Path | None) -> None:
    handler: logging.Handler = logging.StreamHandler()
    formatter = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    if path is not None:
        file_handler = logging.FileHandler(path)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    logger.setLevel(level.upper() if isinstance(level, str) else level)


def as_mapping(pack: CallPack) -> dict[str, Any]:
    """Return a call record as a plain dict."""
    return dict(typing.cast(Mapping[str, Any], pack))
