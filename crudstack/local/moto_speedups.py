"""Caches for work moto repeats on every request although its result never changes.

The local AWS answers every DynamoDB call of the items API through moto, so moto's fixed cost
per request is part of every route's latency. Profiling the server under PUT /items/{id} (py-spy,
BENCHMARKS.md) showed three pure computations redone on each request:

- the dispatcher lists moto's package folder on disk (``os.listdir`` + ``isdir`` on each of ~150
  entries) to recognise a service name in the Host header: ``backends.list_of_moto_modules``;
- each service call lists the public methods of its response class with ``inspect.getmembers``
  to find the action's handler: ``core.responses.method_names_from_class``;
- an UpdateExpression is tokenised and parsed twice per UpdateItem (once to find the names and
  values it uses, once to apply it): ``UpdateExpressionParser.make``. A PUT's expression is the
  same text every time; only its values change, and they are not part of the parse.

Each is replaced by a cached equivalent. The cached results are never mutated by moto: the
module list and method names are only tested with ``in``, and moto's UpdateExpressionValidator
deep-copies the parsed expression before resolving names and values into it. A moto upgrade
that renames any of these fails ``install`` loudly (tests/local/test_moto_speedups.py) rather
than silently losing the cache.
"""

from __future__ import annotations

import functools
from typing import Any

# Distinct UpdateExpression texts kept parsed. The items API uses a handful; the bound keeps a
# client that sends endless distinct expressions from growing the server's memory.
PARSED_EXPRESSIONS = 256

_installed = False


def install() -> None:
    """Swap the cached versions in; safe to call more than once."""
    global _installed
    if _installed:
        return
    from moto import backends
    from moto.core import responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    module_names = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: module_names  # the package's folders do not change while it runs

    uncached_method_names = responses.method_names_from_class
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        lambda clazz: frozenset(uncached_method_names(clazz)))

    uncached_make = UpdateExpressionParser.make.__func__
    UpdateExpressionParser.make = classmethod(  # type: ignore[method-assign]
        functools.lru_cache(maxsize=PARSED_EXPRESSIONS)(uncached_make))
    _installed = True


def cache_info() -> dict[str, Any]:
    """How often the caches served a request (for tests and the server's debug log)."""
    from moto.core import responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    return {"method_names": responses.method_names_from_class.cache_info(),
            "update_expressions": UpdateExpressionParser.make.__func__.cache_info()}
