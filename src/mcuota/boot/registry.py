"""Strategies by name, imported only when asked for.

A layout names its strategy as a string (``"gizwits"``, ``"mcuboot-swap-move"``), so listing layouts,
or sweeping a Gizwits board, never imports MCUboot's image and crypto code. Each name maps to the
module that implements it; the class is the :class:`~mcuota.boot.strategy.Strategy` subclass in that
module (or, for a package, in one of its modules) whose ``name`` attribute equals the requested name,
so a module can rename its classes without touching this table. A module that is missing or does not
provide the name fails with a message naming both, instead of an ``ImportError`` from deep inside.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

from mcuota.boot.layout import Layout
from mcuota.boot.strategy import Strategy
from mcuota.errors import UsageError

_MODULES: dict[str, str] = {
    "gizwits": "mcuota.boot.gizwits",
    "stm32-header": "mcuota.boot.stm32_header",
    "interrupt": "mcuota.boot.interrupt",
    "dapboot": "mcuota.boot.dapboot",
    "mcuboot-overwrite": "mcuota.boot.mcuboot",
    "mcuboot-swap-scratch": "mcuota.boot.mcuboot",
    "mcuboot-swap-move": "mcuota.boot.mcuboot",
    "mcuboot-swap-offset": "mcuota.boot.mcuboot",
}
_REGISTERED: dict[str, type[Strategy]] = {}


def strategy_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys((*_MODULES, *_REGISTERED)))


def register(name: str, cls: type[Strategy]) -> None:
    """Make ``cls`` the strategy called ``name`` (a test double, or a strategy outside mcuota)."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise UsageError(f"strategy {name!r}: {cls!r} is not a Strategy subclass")
    _REGISTERED[name] = cls


def strategy_class(name: str) -> type[Strategy]:
    """The class implementing strategy ``name``, importing its module on first use."""
    found = _REGISTERED.get(name)
    if found is not None:
        return found
    module_name = _MODULES.get(name)
    if module_name is None:
        raise UsageError(f"unknown bootloader strategy {name!r}; known: {', '.join(strategy_names())}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"strategy {name!r} lives in {module_name}, which cannot be imported "
                         f"({exc}); is that part of mcuota installed?") from None
    cls = _find(module, name)
    if cls is None:
        raise UsageError(f"strategy {name!r}: {module_name} has no Strategy subclass with "
                         f"name = {name!r}")
    _REGISTERED[name] = cls
    return cls


def strategy_for(layout: Layout) -> Strategy:
    """A ready strategy instance for ``layout`` (the one its ``strategy`` field names)."""
    return strategy_class(layout.strategy)(layout)


def _find(module: ModuleType, name: str) -> type[Strategy] | None:
    """The Strategy subclass called ``name`` in ``module``, or in its submodules if it is a package."""
    hit = _scan(module, name)
    if hit is not None or not hasattr(module, "__path__"):
        return hit
    for info in pkgutil.iter_modules(module.__path__, module.__name__ + "."):
        try:
            sub = importlib.import_module(info.name)
        except ImportError:
            continue
        hit = _scan(sub, name)
        if hit is not None:
            return hit
    return None


def _scan(module: ModuleType, name: str) -> type[Strategy] | None:
    for _attr, value in inspect.getmembers(module, inspect.isclass):
        if (issubclass(value, Strategy) and not inspect.isabstract(value)
                and getattr(value, "name", "") == name):
            return value
    return None
