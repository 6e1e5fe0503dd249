"""idict: watch and steer a long-running computation.

Embed an :class:`IDict` in a computation and serve it; watch and drive runs
with :func:`connect`. The same Rust core as the ``idict`` CLI and the
``idict-inspector`` desktop app, and the same wire. See ``__init__.pyi`` (or
``help(idict.IDict)``) for the API.
"""

from collections.abc import MutableMapping as _MutableMapping

from . import _idict as _ext
from ._idict import *  # noqa: F401,F403
from ._idict import Locked as _Locked
from ._idict import __version__  # noqa: F401

# `with d.lock() as s:` gives a MutableMapping (isinstance says so).
_MutableMapping.register(_Locked)

#: Everything the extension offers (the stub lists the same names).
__all__ = sorted(n for n in vars(_ext) if not n.startswith("_"))
