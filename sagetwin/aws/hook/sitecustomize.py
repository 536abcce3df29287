"""Put first on PYTHONPATH by ``sagetwin exec`` / ``sagetwin aws``: routes the AWS clients of
every Python started with that environment to the twin (see ``client_hook``), then runs the
``sitecustomize`` this one shadows, if there is one."""

import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("_sagetwin_client_hook", os.path.join(_here, "..", "client_hook.py"))
_hook = importlib.util.module_from_spec(_spec)
sys.modules["_sagetwin_client_hook"] = _hook
_spec.loader.exec_module(_hook)
_hook.install()

for _entry in sys.path:
    _candidate = os.path.join(_entry or ".", "sitecustomize.py")
    if os.path.abspath(_entry or ".") != _here and os.path.isfile(_candidate):
        _shadowed = importlib.util.spec_from_file_location("_shadowed_sitecustomize", _candidate)
        _shadowed.loader.exec_module(importlib.util.module_from_spec(_shadowed))
        break
