"""Stripe's wire format for request parameters, and validation against the SDK's types.

Stripe takes ``application/x-www-form-urlencoded`` bodies whose keys carry nesting in
brackets (``line_items[0][price_data][currency]=usd``).  :func:`decode_form` turns them
back into nested dicts; :func:`validate` then walks the decoded tree against the
``TypedDict`` the ``stripe`` package ships for that call (``SessionCreateParams``,
``AccountCreateParams``...).  Using the SDK's own definitions, instead of a list written
here, means the emulator rejects exactly the parameters the installed SDK version does
not know, with Stripe's wording (``Received unknown parameter: X``), so a typo in the
app's Stripe calls fails in tests rather than in production.
"""

from __future__ import annotations

import collections.abc
import decimal
import functools
import sys
import types
import typing
from typing import Any
from urllib.parse import parse_qsl

from .errors import StripeError


def decode_form(body: str) -> dict[str, Any]:
    """Decode a form-encoded string with bracketed keys into nested dicts.

    Arrays stay dicts keyed by their index string (``{"0": {...}}``) until
    :func:`validate` sees that the schema wants a list there, because a metadata key may
    legitimately be ``"0"``.  ``a[]=x`` (empty brackets) appends.
    """
    result: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True):
        parts = _split_key(raw_key)
        node = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return result


def _split_key(key: str) -> list[str]:
    """``a[b][0]`` -> ``["a", "b", "0"]``."""
    head, sep, rest = key.partition("[")
    parts = [head]
    if sep:
        for piece in ("[" + rest).split("[")[1:]:
            parts.append(piece.rstrip("]") if piece.endswith("]") else piece)
    return parts


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__required_keys__") and issubclass(tp, dict)


@functools.cache
def _request_option_keys() -> frozenset[str]:
    """Keys of the SDK's ``RequestOptions``: client-side options, never sent as params."""
    from stripe._request_options import RequestOptions

    return frozenset(RequestOptions.__annotations__)


@functools.cache
def _hints(td: type) -> dict[str, Any]:
    """Resolved field types of a params TypedDict, without the client-side options.

    ``typing.get_type_hints`` evaluates the SDK's string annotations in the TypedDict's
    own module; ``RequestOptions`` (a base of most params types) names types only
    imported under ``TYPE_CHECKING``, so those are supplied here.
    """
    from stripe._stripe_context import StripeContext

    namespace = {
        **vars(sys.modules[td.__module__]),
        "Mapping": collections.abc.Mapping,
        "StripeContext": StripeContext,
    }
    hints = typing.get_type_hints(td, globalns=namespace)
    return {k: v for k, v in hints.items() if k not in _request_option_keys()}


def _join(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def validate(params: dict[str, Any], td: type) -> dict[str, Any]:
    """Check decoded ``params`` against the TypedDict ``td``; return them typed.

    Integers, booleans and decimals arrive as strings on the wire; the returned copy
    holds Python values (``int``, ``bool``, ``Decimal``) and lists where the schema says
    list.  Raises :class:`StripeError` with Stripe's message for the first problem.
    """
    return _check_typeddict(params, td, "")


def _check_typeddict(value: Any, td: type, prefix: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StripeError(f"Invalid object: {prefix}", param=prefix or None)
    hints = _hints(td)
    for key in value:
        if key not in hints:
            name = _join(prefix, key)
            raise StripeError(
                f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )
    for key in sorted(td.__required_keys__):  # type: ignore[attr-defined]
        if key in hints and key not in value:
            name = _join(prefix, key)
            raise StripeError(
                f"Missing required param: {name}.", code="parameter_missing", param=name
            )
    checked = {}
    for key, item in value.items():
        name = _join(prefix, key)
        if item == "" and not _accepts_empty(hints[key]):
            raise StripeError(
                f"You passed an empty string for '{name}'. We assume empty values are an "
                f"attempt to unset a parameter; however '{name}' cannot be unset. You should "
                f"remove '{name}' from your request or supply a non-empty value.",
                code="parameter_invalid_empty",
                param=name,
            )
        checked[key] = _check(item, hints[key], name)
    return checked


def _accepts_empty(tp: Any) -> bool:
    """Whether the SDK declares ``""`` (Stripe's "unset this") valid for a field."""
    if typing.get_origin(tp) is typing.Literal:
        return "" in typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_accepts_empty(option) for option in typing.get_args(tp))
    return False


def _check(value: Any, tp: Any, name: str) -> Any:
    """Validate one value against one annotation; return it converted."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, args, name)
    if origin is typing.Literal:
        if value not in args:
            raise _invalid_choice(name, args)
        return value
    if _is_typeddict(tp):
        return _check_typeddict(value, tp, name)
    if origin in (list, collections.abc.Sequence) or tp is list:
        return _check_list(value, args[0] if args else Any, name)
    if origin in (dict, collections.abc.Mapping) or tp is dict or _is_untyped_object(tp):
        if not isinstance(value, dict):
            raise StripeError(f"Invalid object: {name}", param=name)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise StripeError(f"Invalid string: {name}", param=name)
        return value
    if tp is bool:
        if value not in ("true", "false"):
            raise StripeError(f"Invalid boolean: {value}", param=name)
        return value == "true"
    if tp is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise StripeError(
                f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
            ) from None
    if tp in (float, decimal.Decimal):
        try:
            return decimal.Decimal(value)
        except (TypeError, ArithmeticError):
            raise StripeError(f"Invalid decimal: {value}", param=name) from None
    if tp is type(None):
        if value != "":
            raise StripeError(f"Invalid null: {name}", param=name)
        return None
    # A type this walker does not model (a class from the SDK used as a value): accept
    # rather than reject something Stripe would take.
    return value


def _is_untyped_object(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and origin.__name__ == "UntypedStripeObject"


def _check_list(value: Any, item_type: Any, name: str) -> list[Any]:
    if isinstance(value, list):
        items = list(enumerate(value))
    elif isinstance(value, dict) and all(k.isdigit() for k in value):
        items = sorted(((int(k), v) for k, v in value.items()), key=lambda kv: kv[0])
    else:
        raise StripeError(f"Invalid array: {name}", param=name)
    return [_check(item, item_type, f"{name}[{index}]") for index, item in items]


def _check_union(value: Any, options: tuple[Any, ...], name: str) -> Any:
    """Accept ``value`` if any member of the union accepts it.

    The SDK writes enums as ``Literal['a', 'b'] | str`` so that old SDKs keep working
    when Stripe adds a value; the server itself only accepts the listed values, and so
    does the emulator (``Literal[''] | str`` is the unset-this-field idiom and takes any
    string).  When every member rejects the value, the error from the member that fits
    the value's shape best (an object for a dict, a scalar for a string) is raised, so a
    nested unknown parameter is reported by its full name.
    """
    literals = [v for o in options if typing.get_origin(o) is typing.Literal for v in o.__args__]
    others = [o for o in options if typing.get_origin(o) is not typing.Literal]
    if isinstance(value, str) and literals:
        if value in literals:
            return value
        if str in others and [v for v in literals if v != ""]:
            raise _invalid_choice(name, tuple(v for v in literals if v != ""))
    first_error: StripeError | None = None
    for option in sorted(others, key=lambda o: _shape_rank(o, value)):
        try:
            return _check(value, option, name)
        except StripeError as error:
            first_error = first_error or error
    if first_error is not None:
        raise first_error
    raise _invalid_choice(name, tuple(literals))


def _shape_rank(tp: Any, value: Any) -> int:
    """0 when ``tp`` is the kind of thing ``value`` is (mapping vs scalar), else 1."""
    origin = typing.get_origin(tp) or tp
    is_mapping = _is_typeddict(tp) or origin in (dict, collections.abc.Mapping, list)
    return 0 if is_mapping == isinstance(value, dict) else 1


def _invalid_choice(name: str, choices: tuple[Any, ...]) -> StripeError:
    shown = [str(c) for c in choices]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f", or {shown[-1]}"
    return StripeError(f"Invalid {name}: must be one of {listed}", param=name)


def params_type(module: str, name: str) -> type:
    """Import a params TypedDict from the installed SDK (``stripe.params...``) by name."""
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["decode_form", "params_type", "validate"]
