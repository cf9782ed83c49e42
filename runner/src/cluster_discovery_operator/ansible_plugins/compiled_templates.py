"""Jinja templates compiled once per ansible-playbook process, instead of once per host and task.

ansible-core compiles a template, or a ``when`` expression, from its source each
time it renders one: ``Environment.from_string`` and ``compile_expression`` keep
nothing (Jinja caches only what its loaders load). When one process reconciles
a batch of 40 objects, each task's arguments and conditions are parsed, turned
into Python and compiled 40 times. In a profile of the runner's benchmark
burst, that compilation was about 15% of the ansible-playbook processes' samples.

The compiled code depends only on the source and on what shapes parsing and code
generation: the environment's syntax settings, extensions, finalize, and
ansible's ``escape_backslashes`` compile context. So it is kept under exactly
that key, and each caller still gets a template of its own environment, made
from the code the way Jinja makes one from its bytecode cache
(``Template.from_code``). Nothing is cached when ansible's template debugging
is on (it writes each compiled source to a file), nor when compiling fails: the
error is raised as before. The trust check (``TrustedAsTemplate``) happens
before any compilation and is untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import CodeType
from typing import Any

from jinja2 import nodes
from jinja2.environment import Environment, Template, TemplateExpression
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser

MAX_ENTRIES = 2048
"""A role has tens of templates; a stream of distinct ones empties the cache rather than growing it."""


class CompiledTemplates:
    """Compiled code of templates and expressions, by source and compile settings; counts what it saved."""

    def __init__(self, compile_context: Callable[[], Any]) -> None:
        """``compile_context()``: what ansible's compile-time context adds to the key (its escape_backslashes)."""
        self._compile_context = compile_context
        self._codes: dict[tuple[Any, ...], CodeType] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _key(self, kind: str, environment: Environment, source: str) -> tuple[Any, ...]:
        return (
            kind,
            source,
            type(environment),
            environment.block_start_string,
            environment.block_end_string,
            environment.variable_start_string,
            environment.variable_end_string,
            environment.comment_start_string,
            environment.comment_end_string,
            environment.line_statement_prefix,
            environment.line_comment_prefix,
            environment.trim_blocks,
            environment.lstrip_blocks,
            environment.newline_sequence,
            environment.keep_trailing_newline,
            tuple(sorted(environment.extensions)),
            environment.optimized,
            environment.is_async,
            environment.finalize,
            environment.autoescape,
            environment.code_generator_class,
            self._compile_context(),
        )

    def code(self, kind: str, environment: Environment, source: str, compile_: Callable[[], CodeType]) -> CodeType:
        key = self._key(kind, environment, source)
        with self._lock:
            code = self._codes.get(key)
            if code is not None:
                self.hits += 1
                return code
        code = compile_()  # raises as uncached compilation does; nothing is kept then
        with self._lock:
            self.misses += 1
            if len(self._codes) >= MAX_ENTRIES:
                self._codes.clear()
            self._codes[key] = code
        return code


def _expression_code(environment: Environment, source: str) -> CodeType:
    """Jinja's ``compile_expression`` up to its compiled code (jinja2 3.1), which Jinja does not expose."""
    parser = Parser(environment, source, state="variable")
    try:
        expression = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno, None, None)
        expression.set_environment(environment)
    except TemplateSyntaxError:
        environment.handle_exception(source=source)
    body = [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)]
    return environment.compile(nodes.Template(body, lineno=1))


def install() -> CompiledTemplates | None:
    """Make ansible's Jinja environment reuse compiled templates; None on an ansible-core this does not know."""
    try:
        from ansible._internal._templating._jinja_bits import AnsibleEnvironment, _TemplateCompileContext
    except ImportError:
        return None
    if getattr(AnsibleEnvironment, "_cdo_compiled_templates", None) is not None:
        return AnsibleEnvironment._cdo_compiled_templates  # type: ignore[no-any-return]

    def escape_backslashes() -> bool | None:
        context = _TemplateCompileContext.current(optional=True)
        return None if context is None else bool(context.escape_backslashes)

    cache = CompiledTemplates(escape_backslashes)
    from_string = AnsibleEnvironment.from_string
    compile_expression = AnsibleEnvironment.compile_expression

    def debugging(environment: Any) -> bool:
        return bool(getattr(environment, "_debuggable_template_source", False))

    def cached_from_string(
        self: Any, source: Any, globals: Any = None, template_class: type[Template] | None = None
    ) -> Template:
        if not isinstance(source, str) or debugging(self):
            return from_string(self, source, globals, template_class)  # type: ignore[no-any-return]
        code = cache.code("template", self, source, lambda: self.compile(source))
        return (template_class or self.template_class).from_code(self, code, self.make_globals(globals), None)

    def cached_compile_expression(self: Any, source: str, undefined_to_none: bool = True) -> TemplateExpression:
        if debugging(self):
            return compile_expression(self, source, undefined_to_none)  # type: ignore[no-any-return]
        code = cache.code("expression", self, source, lambda: _expression_code(self, source))
        template = self.template_class.from_code(self, code, self.make_globals(None), None)
        return TemplateExpression(template, undefined_to_none)

    AnsibleEnvironment.from_string = cached_from_string
    AnsibleEnvironment.compile_expression = cached_compile_expression
    AnsibleEnvironment._cdo_compiled_templates = cache
    return cache
