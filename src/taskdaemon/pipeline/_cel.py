"""The CEL core: the compiled extension of ``common-expression-language``, without its package.

``import cel`` runs the package's ``__init__``, which also imports the package's interactive
command-line tool (``cel.cli``: typer, rich, pygments, prompt_toolkit): paid at every start of
``taskdaemon`` for code a pipeline never calls (``benchmarks/README.md``, "CLI start-up"). This
module loads only the extension, ``cel.cel`` (``compile``, ``evaluate``, ``Context``, ``Program``,
``OptionalValue``: the whole API ``cel`` re-exports from it), as :data:`cel`.

The extension is registered in ``sys.modules`` under its own name, so a later ``import cel`` (by
a handler, a test) runs the package's ``__init__`` over this very module: the extension is
initialised once per process and both see the same types. One difference remains after that:
the attribute ``cel.cel`` of the package is not set (nothing imported the submodule through
it); ``from cel import compile`` and ``import cel.cel`` work as usual. If a future release moves
the extension, this falls back to ``import cel.cel``, slower but correct.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__ = ["cel"]

_EXTENSION = "cel.cel"


def _load() -> ModuleType:
    loaded = sys.modules.get(_EXTENSION)
    if loaded is not None:  # the package (or this module) got there first
        return loaded
    package = importlib.util.find_spec("cel")  # a top-level name: found, not imported
    locations = None if package is None else package.submodule_search_locations
    spec = None
    if locations is not None:
        spec = importlib.machinery.PathFinder.find_spec(_EXTENSION, list(locations))
    if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        return importlib.import_module(_EXTENSION)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_EXTENSION] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_EXTENSION]
        raise
    return module


#: The extension module: ``cel.compile(source)``, ``cel.evaluate(...)``, as with ``import cel``.
cel: ModuleType = _load()
