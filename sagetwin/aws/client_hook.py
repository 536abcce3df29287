"""Inside a person's own Python process: every AWS client talks to the twin, nowhere else.

Most clients already follow ``AWS_ENDPOINT_URL``, but the SageMaker SDK builds its STS client
with an explicit regional URL (``https://sts.<region>.amazonaws.com``), which that variable
does not override; ``default_bucket()`` and ``get_execution_role()`` would reach for AWS. This
module rewrites any non-loopback ``endpoint_url`` given to botocore to the twin's, and shortens
the SDK's polling intervals (5 to 30 s: sized for the cloud) to 0.5 s,
since the twin's jobs run on this machine. Nothing else about the SDK changes.

Standard library only, and no sagetwin import: ``hook/sitecustomize.py`` loads it by path
into any Python that has botocore, with or without sagetwin installed.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import ipaddress
import os
import sys
import threading
from typing import Any
from urllib.parse import urlparse

ENDPOINT_VARIABLE = "SAGETWIN_AWS_ENDPOINT"
CHANGES_VARIABLE = "SAGETWIN_AWS_CHANGES"  # the file the twin grows at each status change (aws.changes)
POLL_S = 0.5  # a log line shows within half a second; each poll costs CPU the job trains on
CHANGE_CHECK_S = 0.02  # between polls, how often the SDK's wait looks at the twin's changes file
SDK_DESCRIBE_INTERVAL_S = 30  # _logs_for_job re-describes a job at most this often
# the SDK's waits between polls: they end early when the twin says a status changed
SDK_POLL_LOOPS = ("_logs_for_job", "_wait_until_training_done", "_wait_until")
_installed: dict[str, str] = {}


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install(endpoint: str | None = None) -> bool:
    """Route this process's AWS clients to ``endpoint`` (default: ``$SAGETWIN_AWS_ENDPOINT``)."""
    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        return False
    if not is_loopback_url(endpoint):
        raise ValueError(f"{ENDPOINT_VARIABLE}={endpoint} is not on 127.0.0.1; the twin only listens there.")
    _installed["endpoint"] = endpoint
    changes = os.environ.get(CHANGES_VARIABLE)
    if changes:
        _installed["changes"] = changes
    else:
        _installed.pop("changes", None)
    if "hooks" not in _installed:
        _installed["hooks"] = "yes"
        _after_import("botocore.session", lambda module: _patch_create_client(module.Session))
        # s3fs (datasets' save_to_disk("s3://...")) goes through aiobotocore, whose session overrides it
        _after_import("aiobotocore.session", lambda module: _patch_create_client(
            module.AioSession, sys.modules["botocore.session"].Session.create_client))
        _after_import("sagemaker.session", _patch_sdk_polls)
        _after_import("sagemaker.telemetry.telemetry_logging", _silence_sdk_telemetry)
        _after_import("sagemaker.utils", _remember_endpoint_table)
    return True


def uninstall() -> None:
    """Clients created from now on go where they would without the twin (polls stay short)."""
    _installed.pop("endpoint", None)
    _installed.pop("changes", None)


def _after_import(name: str, action: Any) -> None:
    """Run ``action(module)`` now if ``name`` is imported, else right after it is."""
    if name in sys.modules:
        action(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, action))


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, action: Any) -> None:
        self.name, self.action = name, action

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader, action = spec.loader, self.action
        real_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            real_exec(module)
            action(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _patch_create_client(session_class: Any, canonical: Any = None) -> None:
    """Wrap ``create_client`` so that a missing or non-loopback ``endpoint_url`` becomes the twin's.
    Arguments are read against botocore's own signature (aiobotocore's takes ``*args, **kwargs``
    and hands them on to it)."""
    if session_class.__dict__.get("create_client") is None or getattr(session_class.create_client, "_sagetwin", False):
        return
    original = session_class.create_client
    signature = inspect.signature(canonical or original)  # follows __wrapped__ once patched

    @functools.wraps(original)
    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        twin = _installed.get("endpoint")
        if not twin:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        url = bound.arguments.get("endpoint_url")
        if not url or not is_loopback_url(url):
            bound.arguments["endpoint_url"] = twin
        return original(*bound.args, **bound.kwargs)

    create_client._sagetwin = True  # type: ignore[attr-defined]
    session_class.create_client = create_client


def _patch_sdk_polls(module: Any) -> None:
    session_class = module.Session
    for name in ("logs_for_job", "wait_for_endpoint", "wait_for_job", "logs_for_processing_job",
                 "logs_for_transform_job"):
        function = getattr(session_class, name, None)
        if function is not None:
            _set_default(function, "poll", POLL_S)
    for name in ("_wait_until", "_wait_until_training_done"):
        function = getattr(module, name, None)
        if function is not None:
            _set_default(function, "poll", POLL_S)
    logs_for_job = getattr(module, "_logs_for_job", None)
    logs_for_transform = getattr(session_class, "logs_for_transform_job", None)
    if logs_for_job is not None:
        # described at every poll: a wait that ended early (see _SdkTime) is followed by a describe
        for function in filter(None, (logs_for_job, logs_for_transform)):
            _replace_constant(function, SDK_DESCRIBE_INTERVAL_S, 0)
        state = getattr(getattr(module, "LogState", None), "JOB_COMPLETE", None)
        loops = {f.__code__ for name in SDK_POLL_LOOPS if (f := getattr(module, name, None)) is not None}
        if logs_for_transform is not None:
            loops.add(logs_for_transform.__code__)
        if state is not None and not isinstance(module.time, _SdkTime):
            module.time = _SdkTime(module.time, logs_for_job.__code__, state, loops)


class _SdkTime:
    """``sagemaker.session``'s ``time``, with its polling waits fitted to a twin on this machine:

    - once ``_logs_for_job`` has seen the job end it sleeps one more poll so that CloudWatch can
      catch up with the last lines; the twin reports a job's end only once every line is in
      CloudWatch, so under the twin that sleep is skipped;
    - a wait between two polls ends as soon as the twin signals a status change (``aws.changes``),
      so the SDK sees a job's end or an endpoint's ``InService`` when it happens, not up to a poll
      later. Every other use of ``time`` is unchanged."""

    def __init__(self, time_module: Any, code: Any, job_complete: int, loops: set[Any]) -> None:
        self._time, self._code, self._job_complete, self._loops = time_module, code, job_complete, loops
        self._seen = threading.local()  # the file's size when this thread last looked

    def sleep(self, seconds: float) -> None:
        caller = sys._getframe(1)
        if "endpoint" not in _installed or caller.f_code not in self._loops:
            return self._time.sleep(seconds)
        if caller.f_code is self._code and caller.f_locals.get("state") == self._job_complete:
            return None
        return self._until_a_change(seconds, _installed.get("changes"))

    def _until_a_change(self, seconds: float, changes: str | None) -> None:
        """Sleep ``seconds``, or less: until the twin's changes file grows. A change since this
        thread's last look (made while the SDK was describing) ends the wait at once."""
        start = _size(changes)
        if start is None:
            return self._time.sleep(seconds)
        try:
            if getattr(self._seen, "size", start) != start:
                return None
            deadline = self._time.monotonic() + seconds
            while (left := deadline - self._time.monotonic()) > 0:
                self._time.sleep(min(CHANGE_CHECK_S, left))
                if _size(changes) != start:
                    return None
            return None
        finally:
            self._seen.size = _size(changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._time, name)


def _size(path: str | None) -> int | None:
    try:
        return os.stat(path).st_size if path else None
    except OSError:
        return None


def _replace_constant(function: Any, old: int, new: float) -> None:
    """The SDK's hard-coded describe interval, shortened; left alone unless it is unambiguous."""
    code = function.__code__
    if [c for c in code.co_consts if type(c) is int].count(old) == 1:
        function.__code__ = code.replace(co_consts=tuple(new if type(c) is int and c == old else c
                                                          for c in code.co_consts))


def _remember_endpoint_table(module: Any) -> None:
    """The SDK re-reads botocore's endpoint table (a 0.2 s JSON parse) for every STS URL it
    builds, three times per ``fit()``; the table does not change while a process runs, so it
    is read once. What the SDK builds from it is unchanged."""
    resolver = getattr(module, "_botocore_resolver", None)
    if resolver is not None and not hasattr(resolver, "cache_info"):
        module._botocore_resolver = functools.lru_cache(maxsize=1)(resolver)


def _silence_sdk_telemetry(module: Any) -> None:
    """The SDK reports usage with a plain HTTPS GET to an AWS bucket, outside botocore: under the
    twin nothing leaves this machine, so that request is not sent."""
    if hasattr(module, "_requests_helper"):
        module._requests_helper = lambda url, timeout: None


def _set_default(function: Any, parameter: str, value: Any) -> None:
    """Replace one positional-or-keyword default in place; the call sites stay the SDK's own."""
    params = [p for p in inspect.signature(function).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    with_defaults = [p.name for p in params if p.default is not p.empty]
    if parameter in with_defaults and function.__defaults__:
        defaults = list(function.__defaults__)
        defaults[with_defaults.index(parameter)] = value
        function.__defaults__ = tuple(defaults)
