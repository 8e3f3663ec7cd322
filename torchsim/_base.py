"""The one base of metric modules and losses, and the factory that builds them from records.

A metric module and a loss are both an ``nn.Module`` that stores the keyword options
of one function (checked when it is built) and calls that function in ``forward``;
they differ only in ``forward`` (the loss transforms and reduces the per-image values)
and in streaming (the module accumulates them). :class:`FunctionModule` is that
common part.

A subclass names its metric, ``class SSIM(Metric, metric="ssim")``, and gets from the
registry record an ``__init__`` whose signature is exactly the function's keyword
options with the same defaults (a loss takes the record's ``grad_options`` as its
defaults), e.g. ``SSIM(*, data_range=None, kernel_size=11, ..., reduction="mean")``.
:func:`export_classes` builds the classes a module file does not write out, so a
record that names a module or a loss is all a new metric needs.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, ClassVar, Dict, List, MutableMapping, Optional

from torch import nn

from . import conventions, registry
from ._validation import check_options
from .registry import MetricRecord

_UNSET = type("_Unset", (), {"__repr__": lambda self: "<default>"})()  # an option the caller did not pass
_SECTIONS = ("Args:", "Returns:", "Raises:", "Example:", "Examples:", "Note:", "References:", "Convention:")


class FunctionModule(nn.Module):
    """An ``nn.Module`` holding the keyword options of its record's function.

    ``self.options`` maps every option to its value (defaults included, lists stored as
    tuples); ``repr`` shows them. Options are checked when the module is built
    (:func:`torchsim._validation.check_options`): a wrong name, ``reduction``,
    ``kernel_size`` or ``data_range`` fails at construction, not at the first batch.
    """

    #: the registry record of the class (set by ``metric=`` in the class statement)
    record: ClassVar[MetricRecord]

    def __init_subclass__(cls, *, metric: Optional[str] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if metric is None:  # an abstract base, or a user's subclass of a built class
            return
        cls.record = registry.get(metric)
        _set_init(cls, cls._defaults(cls.record))
        cls.__doc__ = _compose_doc(cls.__doc__, cls._summary(cls.record), cls._args_doc(cls.record))

    def __init__(self, **options: Any) -> None:
        # Reached through the generated __init__, which passes every option by name, _UNSET
        # where the caller gave none: a convention's preset fills those (explicit options win).
        super().__init__()
        options = conventions.resolve(type(self).__name__, self.record.name, options, self._defaults(self.record), _UNSET)
        self._check_options(options)
        self.options: Dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}

    def _check_options(self, options: Dict[str, Any]) -> None:
        check_options(type(self).__name__, self.record.function, options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())

    # -- what a subclass family changes -----------------------------------------------------
    @classmethod
    def _defaults(cls, record: MetricRecord) -> Dict[str, Any]:
        """Keyword options of the constructor and their defaults."""
        return dict(record.options)

    @classmethod
    def _summary(cls, record: MetricRecord) -> str:
        return f"Wraps :func:`torchsim.{record.name}`."

    @classmethod
    def _args_doc(cls, record: MetricRecord) -> str:
        return _function_args(record.function)


def _set_init(cls: type, defaults: Dict[str, Any]) -> None:
    """Give ``cls`` an ``__init__(self, *, <options>)`` with these defaults (a real function:
    keyword-only arguments enforced by Python, defaults in ``__kwdefaults__``, names in
    ``__code__``). Unknown names reach :func:`check_options`, whose message names the class
    and lists the options; the signature shown by ``inspect``/``help`` omits that catch-all."""
    names = list(defaults)
    if not all(n.isidentifier() for n in names):
        raise ValueError(f"{cls.__name__}: option names must be identifiers, got {names}")
    params = ", ".join(names)
    passed = ", ".join(f"{n}={n}" for n in names)
    source = (
        f"def __init__(self, *, {params}, **unexpected):\n"
        f"    super_(cls_, self).__init__({passed}, **unexpected)\n"
    )
    scope: Dict[str, Any] = {"super_": super, "cls_": cls}
    exec(source, scope)  # the way dataclasses and namedtuple build their __init__
    init = scope["__init__"]
    init.__kwdefaults__ = dict.fromkeys(names, _UNSET)  # the defaults shown are in __signature__
    annotations = getattr(cls.record.function, "__annotations__", {})
    init.__annotations__ = {n: annotations[n] for n in names if n in annotations}
    init.__module__ = cls.__module__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = f"Keyword options of :func:`torchsim.{cls.record.name}` (see the class docstring)."
    P = inspect.Parameter
    options = [P(n, P.KEYWORD_ONLY, default=d, annotation=init.__annotations__.get(n, P.empty)) for n, d in defaults.items()]
    init.__signature__ = inspect.Signature([P("self", P.POSITIONAL_OR_KEYWORD), *options])
    cls.__init__ = init


def _sections(doc: str) -> List[List[str]]:
    """A cleaned docstring cut into its top-level sections (the first holds the summary)."""
    out: List[List[str]] = [[]]
    for line in inspect.cleandoc(doc).splitlines():
        if line.strip() in _SECTIONS and not line.startswith(" "):
            out.append([])
        out[-1].append(line)
    return out


def _function_args(function: Any) -> str:
    """The function's ``Args:`` section without the ``x, y`` (image) entry."""
    for section in _sections(function.__doc__ or ""):
        if section[0].strip() != "Args:":
            continue
        entries: List[List[str]] = []
        for line in section[1:]:
            if line.startswith("    ") and not line.startswith("     "):
                entries.append([line])
            elif entries and line.strip():
                entries[-1].append(line)
        kept = [e for e in entries if not set(e[0].split(":")[0].replace(",", " ").split()) <= {"x", "y"}]
        return "\n".join(["Args:"] + [line for e in kept for line in e])
    return ""


def _compose_doc(written: Optional[str], summary: str, args: str) -> str:
    """The class docstring: the written one (or ``summary``), with ``args`` added when it has none,
    before its Example/Note/References sections."""
    sections = _sections(written) if written else [summary.splitlines()]
    if args and not any(s[0].strip() == "Args:" for s in sections[1:]):
        sections.insert(1, args.splitlines())
    text = "\n\n".join("\n".join(s).strip("\n") for s in sections if "".join(s).strip())
    return text + "\n"


def export_classes(base: type, attr: str, namespace: MutableMapping[str, Any]) -> List[str]:
    """Every class the records name in ``attr`` (``"module_name"`` or ``"loss_name"``), in ``namespace``.

    A class written out in the module file (for its documentation) is kept; any other is built
    here as ``class <Name>(base, metric=<record name>)`` with ``__module__`` / ``__qualname__``
    of ``namespace``, so it pickles and prints like a written one. Returns the names in
    registration order, for ``__all__``.
    """
    exported = []
    for record in registry.records():
        name = getattr(record, attr)
        if name is None:
            continue
        cls = namespace.get(name)
        if cls is None:
            body = {"__module__": namespace["__name__"], "__qualname__": name}
            cls = types.new_class(name, (base,), {"metric": record.name}, lambda ns: ns.update(body))
            namespace[name] = cls
        elif not (isinstance(cls, type) and issubclass(cls, base) and cls.__dict__.get("record") is record):
            statement = f"class {name}({base.__name__}, metric={record.name!r})"
            raise TypeError(f"{namespace['__name__']}.{name} must be declared as {statement}")
        exported.append(name)
    return exported
