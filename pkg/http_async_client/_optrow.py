"""The option table's row type, on its own so that feature modules
(``_resilience``) can declare their rows next to their checks without
importing ``_optable``, which imports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Check = Callable[[str, object], Any]


@dataclass(frozen=True)
class Opt:
    """One setting.  ``client``: the ``Client`` keyword (None: per query
    only); ``query``: the ``query()`` keyword (None: client only)."""

    client: str | None
    query: str | None
    default: Any = None
    client_check: Check | None = None
    query_check: Check | None = None
    cfg: str | None = None          # hac_config field of the client's value
    key: str | None = None          # HAC_O_* of one query's value
    http_req: bool = True           # the query name is also an http_req key
    aliases: tuple[str, ...] = ()   # other http_req spellings (Kamailio's)
    attribute: bool = True          # the client has it as an attribute
    since: str = ""                 # "5.x"/"6.2": the seed version; "ours": not the seed's
    doc: str = ""                   # for docs/api.md (markdown)


__all__ = ["Check", "Opt"]
