"""Caches for work moto repeats on every request although its result never changes.

The local AWS answers every DynamoDB call of the items API through moto, so moto's fixed cost
per request is part of every route's latency. Profiling the server under PUT /items/{id} (py-spy,
BENCHMARKS.md, issue 4) showed pure computations redone on each request:

- the dispatcher lists moto's package folder on disk (``os.listdir`` + ``isdir`` on each of ~150
  entries) to recognise a service name in the Host header: ``backends.list_of_moto_modules``;
- each service call lists the public methods of its response class with ``inspect.getmembers``
  to find the action's handler: ``core.responses.method_names_from_class``;
- an UpdateExpression is tokenised and parsed twice per UpdateItem (once to find the names and
  values it uses, once to apply it): ``UpdateExpressionParser.make``. A PUT's expression is the
  same text every time; only its values change, and they are not part of the parse;
- the validator then copies the parsed expression with ``copy.deepcopy`` (it resolves names and
  values into its copy), about 130 us for a PUT's expression; unpickling a copy pickled once is
  about 30 us;
- each of the validator's ten passes walks every node of the expression and, for each, builds a
  dict of bound methods to learn which node types it handles, then tests the node against them
  and against ``Node`` with ``isinstance`` on abstract classes (about 1,200 ABC checks per PUT):
  ``DepthFirstTraverser.traverse_node_recursively`` and ``Node.find_clauses``. Which node classes a
  pass handles is fixed per pass class (each ``_processing_map`` lists classes; checked for moto
  5.2.1, the pinned version), so the walk below answers both questions from a table per class;
- a ConditionExpression is lexed and parsed twice per conditional write too (to check the
  placeholders it uses, then to evaluate it). Its parse depends on the names and values it refers
  to, so it is cached on the text together with those (values of other placeholders, such as a
  PUT's new name, do not matter to it);
- the response serializer walks every member of every AttributeValue of an answer's item (S, N,
  B, SS, ... : ten per attribute) and, for each, asks six alias providers which keys the value
  may hide under. For a plain dict (what DynamoDB's answers are) the answer depends only on the
  member's name and its shape, so it is kept per (name, shape, parent shape).

Most of these costs grow with the number of actions in an UpdateExpression and of attributes in
an item, which is what made PUT /items/{id} slower once it also set updatedAt and version.

Each is replaced by a cached equivalent. The cached results are never mutated by moto: the
module list and method names are only tested with ``in``, the validator works on its own copy of
a parsed expression, parsed conditions and key lists are only read, and node types are only
tested with ``isinstance``. A moto upgrade that renames any of these makes ``install`` raise
MotoChanged (``patches.core.replace``) rather than silently lose the cache; moto's own DynamoDB
tests (683, from the 5.2.1 sdist) pass with every cache installed.
"""

from __future__ import annotations

import copy
import functools
import json
import pickle
import re
from typing import Any

from crudstack.local.patches.core import replace

# Distinct UpdateExpression and ConditionExpression texts kept parsed. The items API uses a handful;
# the bound keeps a client that sends endless distinct expressions from growing the server's memory.
PARSED_EXPRESSIONS = 256
# (member, shape) pairs whose serialization keys are kept: every output shape of every service fits.
SERIALIZER_KEYS = 4096
# Placeholders in a condition: #name and :value (DynamoDB allows letters, digits and _ after them).
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")

_installed = False


def install() -> None:
    """Swap the cached versions in; safe to call more than once."""
    global _installed
    if _installed:
        return
    _cache_dispatch_lookups()
    _cache_update_expression_parses()
    _speed_up_validation_passes()
    _cache_condition_parses()
    _cache_serializer_key_lookups()
    _installed = True


def _cache_dispatch_lookups() -> None:
    from moto import backends
    from moto.core import responses

    module_names = frozenset(backends.list_of_moto_modules())
    # The package's folders do not change while it runs.
    replace(backends, "list_of_moto_modules", lambda: module_names)
    uncached = responses.method_names_from_class
    replace(responses, "method_names_from_class",
             functools.lru_cache(maxsize=None)(lambda clazz: frozenset(uncached(clazz))))


def _cache_update_expression_parses() -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    uncached_make = UpdateExpressionParser.make.__func__

    def make(cls: type, expression: str) -> Any:
        parsed = uncached_make(cls, expression)
        parsed.crudstack_pickled = pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL)
        return parsed

    replace(UpdateExpressionParser, "make", classmethod(functools.lru_cache(maxsize=PARSED_EXPRESSIONS)(make)))

    def copy_parsed_or_deepcopy(value: Any, memo: Any = None) -> Any:
        pickled = getattr(value, "__dict__", {}).get("crudstack_pickled")
        return pickle.loads(pickled) if pickled is not None else copy.deepcopy(value, memo)

    replace(validators, "deepcopy", copy_parsed_or_deepcopy)


def _speed_up_validation_passes() -> None:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Expression, Node, UpdateExpressionFunction

    @functools.cache
    def is_node(kind: type) -> bool:
        return issubclass(kind, Node)

    handled: dict[tuple[type, type], bool] = {}

    def handles(traverser: Any, node_kind: type) -> bool:
        key = (type(traverser), node_kind)
        try:
            return handled[key]
        except KeyError:  # the first traverser of a kind answers for its kind
            return handled.setdefault(key, issubclass(node_kind, traverser.nodes_to_be_processed()))

    def traverse_node_recursively(traverser: Any, node: Any, child_id: int = -1) -> Any:
        # moto's walk, in moto's order: children first (left to right), then the node itself,
        # replaced in its parent by what the pass returns for it.
        if not is_node(type(node)):
            return node
        parent = node.parent
        for index, child in enumerate(node.children or ()):
            traverser.pre_processing_of_child(node, index)
            traverser.traverse_node_recursively(child, index)
        if handles(traverser, type(node)):
            node = traverser.process(node)
            node.parent = parent
            if parent:
                parent.children[child_id] = node
        return node

    replace(DepthFirstTraverser, "traverse_node_recursively", traverse_node_recursively)

    @functools.cache
    def holds_clauses(kind: type) -> bool:
        return issubclass(kind, (Expression, UpdateExpressionFunction))

    def find_clauses(node: Any, clause_types: Any) -> list:
        found = []
        for child in node.children or ():
            if type(child) in clause_types:
                found.append(child)
            elif holds_clauses(type(child)):
                found.extend(child.find_clauses(clause_types))
        return found

    replace(Node, "find_clauses", find_clauses)


def _cache_serializer_key_lookups() -> None:
    from moto.core import serialize

    uncached = serialize.XFormedAttributePicker.get_possible_keys
    possible_keys: dict = {}

    def get_possible_keys(picker: Any, context: Any) -> Any:
        # Only for plain dicts: another object's class or Meta can add aliases of its own.
        if type(context.obj) is not dict:
            return uncached(picker, context)
        shape = context.shape
        key = (tuple(picker.alias_providers), context.key, shape, getattr(shape, "parent", None))
        try:
            return possible_keys[key]
        except KeyError:
            if len(possible_keys) >= SERIALIZER_KEYS:
                possible_keys.clear()
            return possible_keys.setdefault(key, tuple(uncached(picker, context)))

    replace(serialize.XFormedAttributePicker, "get_possible_keys", get_possible_keys)


def _cache_condition_parses() -> None:
    from moto.dynamodb import comparisons, responses as dynamodb_responses
    from moto.dynamodb import models as dynamodb_models

    class CachedConditionParser(comparisons.ConditionExpressionParser):
        # The parse and the placeholders it found, for each condition text and the names and
        # values it refers to. The parsed condition (Op objects) is only evaluated, never changed.
        parses: dict = {}

        def parse(self) -> Any:
            key = self._cache_key()
            if key is None:
                return super().parse()
            try:
                parsed, names_found, values_found = self.parses[key]
            except KeyError:
                parsed = super().parse()  # a condition that does not parse raises: nothing cached
                if len(self.parses) >= PARSED_EXPRESSIONS:
                    self.parses.clear()
                self.parses[key] = (parsed, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
                return parsed
            self.expr_attr_names_found.extend(names_found)
            self.expr_attr_values_found.extend(values_found)
            return parsed

        def _cache_key(self) -> Any:
            text = self.condition_expression
            if not text:
                return None
            names = self.expression_attribute_names or {}
            values = self.expression_attribute_values or {}
            used = sorted(set(_PLACEHOLDER.findall(text)))
            if any(p not in (names if p[0] == "#" else values) for p in used):
                return None  # let moto's parse raise its own error for the missing placeholder
            try:
                return text, json.dumps([(p, names[p] if p[0] == "#" else values[p]) for p in used], sort_keys=True)
            except TypeError:
                return None

    def create_condition_expression_parser(expr: Any, names: Any, values: Any) -> Any:
        return CachedConditionParser(expr, names, values)

    for module in (comparisons, dynamodb_responses, dynamodb_models):
        replace(module, "create_condition_expression_parser", create_condition_expression_parser)


def cache_info() -> dict[str, Any]:
    """How often the lru caches served a request (for tests)."""
    from moto.core import responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    return {"method_names": responses.method_names_from_class.cache_info(),
            "update_expressions": UpdateExpressionParser.make.__func__.cache_info()}
