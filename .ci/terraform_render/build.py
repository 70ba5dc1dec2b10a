"""What is asked of a rendering, the stub module that answers it, and the answer read back from the
stub module's output."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .lexer import IDENT_RE, RenderError, Source
from .parse import Block, Module, resource_mode
from .renderer import Renderer, Scope

# What is rendered of each alarm, when its block sets it.
ALARM_ATTRS = ["alarm_name", "namespace", "metric_name", "dimensions", "period", "statistic",
               "extended_statistic", "metric_query"]
DASHBOARD_ATTRS = ["dashboard_name", "dashboard_body"]


@dataclass
class Request:
    terraform_dir: str
    workspace: str = "dev"
    var_files: list[str] = field(default_factory=list)
    # (name, value) as -var takes them: on every rendering.
    variables: list[tuple[str, str]] = field(default_factory=list)
    dashboards: bool = True
    # TYPE.ATTR or TYPE.NAME.ATTR
    resource_attrs: list[str] = field(default_factory=list)
    # (name, expression)
    exprs: list[tuple[str, str]] = field(default_factory=list)
    # Variables to tell the dependencies of the --resource-attr and --expr values on.
    depends_on: list[str] = field(default_factory=list)
    # (name, value): one more rendering each, with that variable so.
    variants: list[tuple[str, str]] = field(default_factory=list)
    # Skip the variants of the variables no value depends on (of those in depends_on).
    only_dependent_variants: bool = False


@dataclass
class Wanted:
    section: str  # dashboards, alarms, or attr:SPEC
    block: Block
    attrs: list[str]


def instances(block: Block, value) -> list[tuple[str, object]]:
    """(address, value) of each instance of a rendered resource stub."""
    base = f"{block.labels[0]}.{block.labels[1]}"
    mode = resource_mode(block)
    if mode == "for_each":
        return [(f"{base}[{json.dumps(k)}]", v) for k, v in sorted((value or {}).items())]
    if mode == "count":
        return [(f"{base}[{i}]", v) for i, v in enumerate(value or [])]
    return [(base, value)]


def sensitivity(ref: str, block: Block, attr: str) -> str:
    """Whether each instance's attribute carries a sensitive mark, anywhere inside it."""
    mode = resource_mode(block)
    if mode == "for_each":
        return f"{{ for k, v in {ref} : k => issensitive(jsonencode(v.{attr})) }}"
    if mode == "count":
        return f"[ for v in {ref} : issensitive(jsonencode(v.{attr})) ]"
    return f"issensitive(jsonencode({ref}.{attr}))"


def wanted_blocks(module: Module, request: Request) -> list[Wanted]:
    wanted = []
    if request.dashboards:
        for (kind, name), block in sorted(module.resources.items()):
            if kind == "aws_cloudwatch_dashboard":
                wanted.append(Wanted("dashboards", block, DASHBOARD_ATTRS))
            elif kind == "aws_cloudwatch_metric_alarm":
                for b in block.blocks:
                    if b.kind == "dynamic" and b.labels and b.labels[0] in ALARM_ATTRS:
                        b.src.fail(f'dynamic "{b.labels[0]}": the renderer does not expand dynamic blocks', b.start)
                present = [a for a in ALARM_ATTRS if a in block.attrs or block.nested(a)]
                wanted.append(Wanted("alarms", block, present))
    for spec in request.resource_attrs:
        parts = spec.split(".")
        if len(parts) not in (2, 3) or not all(IDENT_RE.fullmatch(p) for p in parts):
            raise RenderError(f"--resource-attr {spec!r}: expected TYPE.ATTRIBUTE or TYPE.NAME.ATTRIBUTE")
        kind, attr = parts[0], parts[-1]
        only = parts[1] if len(parts) == 3 else None
        if only is not None and (kind, only) not in module.resources:
            raise RenderError(f"--resource-attr {spec!r}: {kind}.{only} is not declared")
        for (k, name), block in sorted(module.resources.items()):
            if k == kind and only in (None, name):
                wanted.append(Wanted(f"attr:{spec}", block, [attr]))
    return wanted


class Stub:
    """The stub module of a request (`text`), and how to read its output (`collect`)."""

    def __init__(self, request: Request):
        self.request = request
        module = self.module = Module(request.terraform_dir)
        self.wanted = wanted_blocks(module, request)
        self.exprs: dict[str, Source] = {}
        for name, text in request.exprs:
            if not IDENT_RE.fullmatch(name):
                raise RenderError(f"--expr {name}={text}: expected NAME=EXPRESSION")
            self.exprs[name] = Source(f"--expr {name}", text)
        for name in request.depends_on:
            if name not in module.variables:
                raise RenderError(f"--depends-on {name}: var.{name} is not declared")

        base = Renderer(module, request.workspace)
        expr_text = self.close(base)
        locals_ = base.stub_locals()
        outputs = {}
        for i, w in enumerate(self.wanted):
            outputs[f"w{i}"] = f"local.{base.stub_name(*w.block.labels)}"
        for name, text in expr_text.items():
            outputs[f"e_{name}"] = f"({text})"

        # Dependencies: the values once more per variable, with that variable marked sensitive.
        # Terraform marks whatever is computed from a sensitive value, and only that.
        self.marked = [name for name in request.depends_on if name in base.variables]
        dep_locals: list[str] = []
        dep_outputs: dict[str, str] = {}
        if request.depends_on:
            self.sensitivity_outputs("s", base, expr_text, dep_outputs)
        for j, name in enumerate(self.marked):
            copy = Renderer(module, request.workspace, namespace=f"d{j}__", marked=name)
            copy_text = self.close(copy)
            dep_locals += copy.stub_locals()
            self.sensitivity_outputs(f"d{j}", copy, copy_text, dep_outputs)

        variables = [module.variables[n].src.text[module.variables[n].start:module.variables[n].end]
                     for n in sorted(module.variables)]

        def assemble(locals_: list[str], outputs: dict[str, str]) -> str:
            parts = variables + ["locals {\n" + "\n".join(locals_) + "\n}"]
            parts.append("output \"rendered\" {\n  sensitive = true\n  value = {\n"
                         + "\n".join(f"{k} = {v}" for k, v in outputs.items()) + "\n}\n}")
            return "\n\n".join(parts) + "\n"

        # The stub module, and the same without the dependencies (what the variants apply).
        self.text = assemble(locals_ + dep_locals, {**outputs, **dep_outputs})
        self.plain_text = assemble(locals_, outputs)

    def close(self, r: Renderer) -> dict[str, str]:
        """Asks `r` for every wanted attribute and expression; the expressions' rewritten text."""
        for w in self.wanted:
            for attr in w.attrs:
                r.need_resource_attr(w.block.labels[0], w.block.labels[1], attr, w.block.src, w.block.start)
        text = {name: r.rewrite(src, 0, len(src.toks) - 1, Scope()) for name, src in self.exprs.items()}
        r.run()
        return text

    def sensitivity_outputs(self, prefix: str, r: Renderer, expr_text: dict[str, str], outputs: dict[str, str]):
        for i, w in enumerate(self.wanted):
            if w.section.startswith("attr:"):
                ref = f"local.{r.stub_name(*w.block.labels)}"
                outputs[f"{prefix}_w{i}"] = sensitivity(ref, w.block, w.attrs[0])
        for name, text in expr_text.items():
            outputs[f"{prefix}_e_{name}"] = f"issensitive(jsonencode({text}))"

    def collect(self, rendered: dict, dependencies: bool = True) -> dict:
        """The answer, from the value of the output of the stub module (of its plain text, without
        `dependencies`)."""
        request = self.request
        result = {"workspace": request.workspace, "dashboards": [], "alarms": [],
                  "resource_attrs": {spec: {} for spec in request.resource_attrs},
                  "exprs": {name: rendered[f"e_{name}"] for name in self.exprs}}
        for i, w in enumerate(self.wanted):
            for address, value in instances(w.block, rendered[f"w{i}"]):
                picked = {a: value.get(a) for a in w.attrs}
                if w.section.startswith("attr:"):
                    result["resource_attrs"][w.section[5:]][address] = picked[w.attrs[0]]
                else:
                    result[w.section].append({"address": address, "file": w.block.src.name, "line": w.block.line,
                                              **picked})
        if request.depends_on and dependencies:
            result["depends_on"] = self.dependencies(rendered)
        return result

    def dependencies(self, rendered: dict) -> dict:
        deps = {"resource_attrs": {spec: {} for spec in self.request.resource_attrs},
                "exprs": {name: [] for name in self.exprs}}
        for prefix, variable in [("s", None)] + [(f"d{j}", name) for j, name in enumerate(self.marked)]:
            for i, w in enumerate(self.wanted):
                if not w.section.startswith("attr:"):
                    continue
                for address, marked in instances(w.block, rendered[f"{prefix}_w{i}"]):
                    found = deps["resource_attrs"][w.section[5:]].setdefault(address, [])
                    self.note(found, variable, marked, address)
            for name in self.exprs:
                self.note(deps["exprs"][name], variable, rendered[f"{prefix}_e_{name}"], f"--expr {name}")
        return deps

    @staticmethod
    def note(found: list[str], variable, marked: bool, what: str):
        if variable is None and marked:
            raise RenderError(f"cannot tell what {what} depends on: it is sensitive already")
        if variable is not None and marked:
            found.append(variable)
