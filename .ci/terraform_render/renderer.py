"""The closure of what is rendered, rewritten to resolve in the stub module.

Asked for a resource attribute or an expression, a Renderer finds every reference it makes, and
what those reach in turn (locals, resource attributes, data sources), and rewrites each so that it
resolves in a module made only of `variable`, `locals` and `output` blocks: `local.x` stays (the
local is copied), `aws_sqs_queue.fanout.name` becomes `local.stub__aws_sqs_queue__fanout.name`,
whose value is built from the resource block's own arguments, its nested blocks or a template of
stubs.py. Everything it cannot stub fails with a RenderError saying where.

A Renderer may work in a namespace (its locals and stubs get a prefix, so that several closures of
the same module live in one stub module) and mark a variable: every `var.NAME` it rewrites becomes
`sensitive(var.NAME)`, so that Terraform marks every value computed from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from .lexer import Source, Tok
from .parse import Block, Module, resource_mode
from .stubs import ACCOUNT_ID, COMPUTED, DATA, DEFAULT_REGION, PARTITION, STUB_PREFIX

FIXED_ROOTS = {"var", "local", "data", "module", "each", "count", "self", "path", "terraform"}
ITER = {"each.key": "each__key", "each.value": "each__value", "count.index": "count__index"}
# path.* that Terraform gives the stub module as it gives the real one: "." for a root module.
PATHS = {"module", "root"}
WORKSPACE = f"{STUB_PREFIX}workspace"


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


def hcl_string(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + out.replace("${", "$${").replace("%{", "%%{") + '"'


class Renderer:
    def __init__(self, module: Module, workspace: str, namespace: str = "", marked: Optional[str] = None):
        self.m = module
        self.workspace = workspace
        self.namespace = namespace
        self.marked = marked
        self.roots = FIXED_ROOTS | module.resource_types()
        # What the closure reaches, and its rendered text.
        self.local_text: dict[str, str] = {}
        self.resource_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self.resource_iter: dict[tuple[str, str], str] = {}
        self.data_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self.variables: set[str] = set()
        self.pending: list[Callable[[], None]] = []
        self.region_text: Optional[str] = None

    # ---- names in the stub module

    def local_name(self, name: str) -> str:
        """What the module's local `name` is called in the stub module."""
        return f"{STUB_PREFIX}{self.namespace}{name}" if self.namespace else name

    def stub_name(self, kind: str, name: str, data: bool = False) -> str:
        return f"{STUB_PREFIX}{self.namespace}{'data__' if data else ''}{kind}__{name}"

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
            src.fail(f"no stub for data.{kind}.{name}.{attr}: add ({kind!r}, {attr!r}) to DATA in "
                     ".ci/terraform_render/stubs.py", offset)
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
                f"known computed attribute): add ({block.labels[0]!r}, {attr!r}) to COMPUTED in "
                ".ci/terraform_render/stubs.py",
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
            variable = attr_at(0)
            if variable is None:
                src.fail(f"cannot read {shown}", at)
            self.variables.add(variable)
            head = f"sensitive(var.{variable})" if variable == self.marked else f"var.{variable}"
            return head + self.steps_text(src, steps[1:], scope)
        if name == "local":
            local = attr_at(0)
            if local is None:
                src.fail(f"cannot read {shown}", at)
            self.need_local(local, src, at)
            return f"local.{self.local_name(local)}" + self.steps_text(src, steps[1:], scope)
        if name == "terraform":
            if attr_at(0) != "workspace" or len(steps) != 1:
                src.fail(f"no stub for {shown} (only terraform.workspace)", at)
            return f"local.{WORKSPACE}"
        if name == "path" and attr_at(0) in PATHS and len(steps) == 1:
            return f"path.{attr_at(0)}"
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
            return f"local.{self.stub_name(kind, dname, data=True)}" + self.steps_text(src, steps[2:], scope)
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
        return f"local.{self.stub_name(name, rname)}" + self.steps_text(src, steps[1:], scope)

    # ---- the stub module

    def stub_locals(self) -> list[str]:
        """The locals of the closure. The workspace is the base namespace's, shared by all."""
        lines = [] if self.namespace else [f"{WORKSPACE} = {hcl_string(self.workspace)}"]
        for (kind, name), attrs in sorted(self.data_attrs.items()):
            body = "\n".join(f"{a} = {v}" for a, v in sorted(attrs.items()))
            lines.append(f"{self.stub_name(kind, name, data=True)} = {{\n{body}\n}}")
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
            lines.append(f"{self.stub_name(kind, name)} = {value}")
        for name, text in sorted(self.local_text.items()):
            lines.append(f"{self.local_name(name)} = {text}")
        return lines
