"""Ray's query options over rows: filters, detail columns, limit; and the row type."""

from __future__ import annotations

import warnings

DEFAULT_LIMIT = 100
PREDICATES = ("=", "!=")


class StateRecord(dict):
    """One row: a dict (for JSON and `row["state"]`) whose keys also read as attributes
    (`row.state`), as Ray's state dataclasses do."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; fields: {sorted(self)}") from None


class Schema:
    """The columns of one resource: `base` shown always, `detail` only with detail=True;
    `filterable` columns may appear in filters."""

    def __init__(self, resource: str, base: list, detail: list, filterable: list):
        self.resource = resource
        self.base = base
        self.detail = detail
        self.filterable = set(filterable)

    def columns(self, detail: bool) -> list:
        return self.base + (self.detail if detail else [])


def check_filters(schema: Schema, filters) -> list:
    """[(key, predicate, value)] as given, or ValueError saying what is wrong."""
    out = []
    for f in filters or []:
        if not isinstance(f, (tuple, list)) or len(f) != 3:
            raise ValueError(f"a filter is a (key, predicate, value) tuple, e.g. ('state', '=', 'ALIVE'); got {f!r}")
        key, predicate, value = f
        if key not in schema.filterable:
            raise ValueError(f"{key!r} is not a filterable column of {schema.resource}; filterable columns: "
                             f"{sorted(schema.filterable)}")
        if predicate not in PREDICATES:
            raise ValueError(f"unsupported filter predicate {predicate!r}; use '=' or '!='")
        out.append((key, predicate, value))
    return out


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def matches(row: dict, filters: list) -> bool:
    for key, predicate, value in filters:
        equal = _text(row.get(key)) == _text(value)
        if equal != (predicate == "="):
            return False
    return True


def select(schema: Schema, rows: list, filters, limit, detail: bool) -> list:
    """Filters, then keeps `limit` rows (warning when more matched), then the wanted columns."""
    filters = check_filters(schema, filters)
    if limit is None:
        limit = DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")
    kept = [r for r in rows if matches(r, filters)]
    if len(kept) > limit:
        warnings.warn(f"{len(kept)} {schema.resource} matched; showing the first {limit} (pass a larger limit to "
                      "see more)", stacklevel=3)
        kept = kept[:limit]
    cols = schema.columns(detail)
    return [StateRecord((c, r.get(c)) for c in cols) for r in kept]
