#!/usr/bin/env python3
"""Holds every resource and data block of a Terraform tree to the AWS provider's schema.

`terraform validate` needs the provider binary, which cannot be downloaded here, so a
misspelled or missing argument would otherwise surface only at apply. The npm package
@cdktf/provider-aws is generated from the provider's schema; its jsii assembly (.jsii, JSON)
has, for every resource and data source, a Config interface whose properties are exactly the
arguments and nested blocks one may write (computed-only attributes are not in it), each with
`optional` unless Terraform requires it, and a docs link `.../docs/resources/<type>#<name>`
that gives its Terraform name.

The package's version is pinned in .ci/provider-schema/package.json (package-lock.json adds its
integrity hash). The first run installs it with `npm ci`, distils the .jsii into
.ci/provider-schema/aws-schema.json (about 1 MB, keyed by the locked version and hash) and
removes the 390 MB install; later runs read only that file.

Reported, with file, line and block address, at any nesting depth (`dynamic` blocks included):
an unknown resource or data source type, an unknown argument or nested block, an argument
written as a block or the other way round, and a missing required argument or block. Not
checked: value types, allowed values, and constraints between arguments (conflicts_with,
exactly_one_of): those the provider reports at plan time. The schema's provider version must
satisfy the aws version constraint of every `required_providers` block in the tree.

Usage: terraform_schema.py TERRAFORM_DIR
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

# bc-python-hcl2 is checkov's fork of python-hcl2: both install the `hcl2` module, so this
# uses the one checkov needs. Its Lark grammar keeps attributes and blocks apart, with lines.
from hcl2.parser import Hcl2
from lark import Token, Tree

PACKAGE = "@cdktf/provider-aws"
SCHEMA_PACKAGE_DIR = Path(__file__).resolve().parent / "provider-schema"
SCHEMA_CACHE = SCHEMA_PACKAGE_DIR / "aws-schema.json"

# Terraform's own arguments and blocks, valid in every resource or data block.
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"resource": {"lifecycle", "connection", "provisioner"}, "data": {"lifecycle"}}

DOCS_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/aws/(?P<version>[\d.]+)/docs/"
    r"(?:resources|data-sources)/\w+(?:#(?P<argument>\w+))? (?P<text>[^}]*)\}"
)


# ---------------------------------------------------------------------------- the schema


def pinned_package() -> dict:
    lock = json.loads((SCHEMA_PACKAGE_DIR / "package-lock.json").read_text())
    entry = lock["packages"][f"node_modules/{PACKAGE}"]
    return {"name": PACKAGE, "version": entry["version"], "integrity": entry["integrity"]}


def load_schema() -> dict:
    """The compact schema of the pinned package, built and cached on first use."""
    pin = pinned_package()
    if SCHEMA_CACHE.exists():
        cached = json.loads(SCHEMA_CACHE.read_text())
        if cached.get("package") == pin:
            return cached
    print(f"installing {PACKAGE} {pin['version']} (npm ci in {SCHEMA_PACKAGE_DIR}) and reading its .jsii")
    subprocess.run(["npm", "ci", "--no-progress", "--loglevel=error"], cwd=SCHEMA_PACKAGE_DIR, check=True)
    node_modules = SCHEMA_PACKAGE_DIR / "node_modules"
    assembly = json.loads((node_modules / PACKAGE / ".jsii").read_text())
    schema = {"package": pin, **schema_from_jsii(assembly)}
    partial = SCHEMA_CACHE.with_suffix(".partial")
    partial.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    partial.replace(SCHEMA_CACHE)
    # Only the .jsii was needed; the package's JavaScript and typings are most of its 390 MB.
    shutil.rmtree(node_modules)
    return schema


def schema_from_jsii(assembly: dict) -> dict:
    """{provider_version, resource: {type: body}, data: {type: body}} from a jsii assembly.

    A body is {"arguments": {name: required}, "blocks": {name: {"required": bool, "body": body}}}.
    An object-valued argument that is not a block (`ingress` of aws_security_group, nested
    attributes of newer resources) is listed in both: `name = {...}` and `name {...}` both pass,
    and the block form is checked against its fields.
    """
    types = assembly["types"]
    schema: dict = {"provider_version": None, "resource": {}, "data": {}}
    kinds = {"cdktf.TerraformResource": "resource", "cdktf.TerraformDataSource": "data"}
    for jsii_type in types.values():
        kind = kinds.get(jsii_type.get("base"))
        if kind is None:
            continue
        link = DOCS_LINK.search(jsii_type["docs"]["summary"])
        schema["provider_version"] = link["version"]
        config = next(p for p in jsii_type["initializer"]["parameters"] if p["name"] == "config")
        schema[kind][link["text"]] = body_from_jsii(types, config["type"]["fqn"])
    return schema


def body_from_jsii(types: dict, fqn: str) -> dict:
    body: dict = {"arguments": {}, "blocks": {}}
    for prop in types[fqn].get("properties", []):  # an empty block has none
        docs = prop["docs"]
        name = DOCS_LINK.search(docs.get("summary", "") + docs.get("remarks", ""))["argument"]
        required = not prop.get("optional", False)
        nested = nested_struct(prop["type"])
        # cdktf documents a nested block, and only a block, as "<name> block."
        is_block = nested is not None and docs.get("summary", "").endswith(" block.")
        if not is_block:
            body["arguments"][name] = required
        if nested is not None:
            body["blocks"][name] = {"required": is_block and required, "body": body_from_jsii(types, nested)}
    return body


def nested_struct(jsii_type: dict) -> str | None:
    """The provider's struct type behind a property (itself, a list of it, or a union), if any."""
    if jsii_type.get("fqn", "").startswith(PACKAGE + "."):
        return jsii_type["fqn"]
    if "collection" in jsii_type:
        return nested_struct(jsii_type["collection"]["elementtype"])
    for member in jsii_type.get("union", {}).get("types", []):
        found = nested_struct(member)
        if found:
            return found
    return None


# ---------------------------------------------------------------------------- the HCL


class Item:
    """An argument (`name = ...`) or a block (`name "label" { body }`) of an HCL body."""

    def __init__(self, node: Tree):
        self.is_block = node.data == "block"
        self.name = identifier(node.children[0])
        self.line = node.meta.line
        self.labels = [label(child) for child in node.children[1:-1]] if self.is_block else []
        self.body = node.children[-1] if self.is_block else None


def identifier(node: Tree) -> str:
    return str(node.children[0])


def label(node: Tree | Token) -> str:
    return identifier(node) if isinstance(node, Tree) else str(node)[1:-1]


def items(body: Tree) -> list[Item]:
    return [Item(child) for child in body.children if isinstance(child, Tree) and child.data in ("attribute", "block")]


def parse(path: Path) -> Tree:
    return Hcl2.lark_parser.parse(path.read_text() + "\n")


# ---------------------------------------------------------------------------- the check


class Findings:
    def __init__(self, root: Path):
        self.root = root
        self.messages: list[str] = []

    def add(self, path: Path, line: int, address: str, message: str) -> None:
        self.messages.append(f"{path.relative_to(self.root.parent)}:{line}: {address}: {message}")


def did_you_mean(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.7)
    return f' (did you mean "{close[0]}"?)' if close else ""


class FileCheck:
    """Checks the resource and data blocks of one file (those in `check` blocks too)."""

    def __init__(self, schema: dict, path: Path, findings: Findings):
        self.schema, self.path, self.findings = schema, path, findings
        self.checked = 0

    def report(self, line: int, address: str, message: str) -> None:
        self.findings.add(self.path, line, address, message)

    def run(self) -> None:
        try:
            tree = parse(self.path)
        except Exception as error:  # Lark's errors carry line and column in their text
            self.report(getattr(error, "line", 0), "file", f"cannot parse: {error}")
            return
        top_level = items(tree.children[0])
        for check_block in [i for i in top_level if i.is_block and i.name == "check"]:
            top_level += items(check_block.body)
        for item in top_level:
            if item.is_block and item.name in ("resource", "data") and len(item.labels) == 2:
                self.check_block(item.name, *item.labels, item)

    def check_block(self, kind: str, type_name: str, name: str, item: Item) -> None:
        address = f"{type_name}.{name}" if kind == "resource" else f"data.{type_name}.{name}"
        self.checked += 1
        known = self.schema[kind]
        if type_name not in known:
            what = "resource type" if kind == "resource" else "data source"
            version = self.schema["provider_version"]
            self.report(item.line, address, f'unknown {what} "{type_name}" (hashicorp/aws {version}){did_you_mean(type_name, known)}')
            return
        self.check_body(known[type_name], item.body, item.line, address, META_BLOCKS[kind], META_ARGUMENTS)

    def check_body(self, schema_body: dict, body: Tree, line: int, address: str,
                   meta_blocks=frozenset(), meta_arguments=frozenset()) -> None:
        """Checks one block's body; `line` is the block's own, for what is missing from it."""
        arguments, blocks = schema_body["arguments"], schema_body["blocks"]
        written: set[str] = set()
        for item in items(body):
            if not item.is_block:
                if item.name in meta_arguments:
                    continue
                if item.name in arguments:
                    written.add(item.name)
                elif item.name in blocks:
                    self.report(item.line, address, f'"{item.name}" is a block: write {item.name} {{ ... }}, not {item.name} = ...')
                else:
                    self.report(item.line, address, f'unknown argument "{item.name}"{did_you_mean(item.name, [*arguments, *blocks])}')
                continue
            if item.name in meta_blocks:
                continue
            name, content = item.name, item.body
            if item.name == "dynamic":
                name = item.labels[0] if item.labels else ""
                content = next((i.body for i in items(item.body) if i.is_block and i.name == "content"), None)
                if content is None:
                    self.report(item.line, address, f'dynamic "{name}" has no content block')
                    continue
            if name in blocks:
                written.add(name)
                self.check_body(blocks[name]["body"], content, item.line, f"{address}.{name}")
            elif name in arguments:
                self.report(item.line, address, f'"{name}" is an argument: write {name} = ..., not {name} {{ ... }}')
            else:
                self.report(item.line, address, f'unknown block "{name}"{did_you_mean(name, [*blocks, *arguments])}')
        for name, required in arguments.items():
            if required and name not in written:
                self.report(line, address, f'missing required argument "{name}"')
        for name, block in blocks.items():
            if block["required"] and name not in written:
                self.report(line, address, f'missing required block "{name}"')


# ---------------------------------------------------------------------------- the version


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def satisfies(version: str, constraint: str) -> bool:
    """Terraform's version constraint syntax: comma-separated `op version` clauses."""
    have = version_tuple(version)
    for clause in constraint.split(","):
        op, wanted_text = re.fullmatch(r"\s*(~>|>=|<=|!=|=|>|<)?\s*([\d.]+)\s*", clause).groups()
        wanted = version_tuple(wanted_text)
        padded = have[: len(wanted)] + (0,) * (len(wanted) - len(have))
        if op == "~>":
            # ~> 6.0 admits 6.x; ~> 6.1.2 admits 6.1.x from 6.1.2 on.
            ok = padded >= wanted and have[: len(wanted) - 1] == wanted[:-1]
        else:
            ok = {None: padded == wanted, "=": padded == wanted, "!=": padded != wanted, ">": padded > wanted,
                  ">=": padded >= wanted, "<": padded < wanted, "<=": padded <= wanted}[op]
        if not ok:
            return False
    return True


AWS_CONSTRAINT = re.compile(r'aws\s*=\s*\{[^}]*?source\s*=\s*"hashicorp/aws"[^}]*?version\s*=\s*"([^"]+)"', re.S)


def check_provider_version(schema: dict, files: list[Path], findings: Findings) -> None:
    for path in files:
        text = path.read_text()
        for match in AWS_CONSTRAINT.finditer(text):
            constraint, line = match[1], text.count("\n", 0, match.start(1)) + 1
            if not satisfies(schema["provider_version"], constraint):
                findings.add(path, line, "required_providers.aws", f'the schema is of hashicorp/aws {schema["provider_version"]}, '
                             f'outside "{constraint}": pin a matching {PACKAGE} in .ci/provider-schema/package.json')


def main() -> None:
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: terraform_schema.py TERRAFORM_DIR", file=sys.stderr)
        sys.exit(2)
    root = Path(sys.argv[1]).resolve()
    schema = load_schema()
    files = sorted(root.rglob("*.tf"))
    findings = Findings(root)
    check_provider_version(schema, files, findings)
    checks = [FileCheck(schema, path, findings) for path in files]
    for check in checks:
        check.run()
    checked = sum(check.checked for check in checks)
    source = f"hashicorp/aws {schema['provider_version']} (from {PACKAGE} {schema['package']['version']})"
    if findings.messages:
        print("\n".join(findings.messages), file=sys.stderr)
        print(f"provider schema: {len(findings.messages)} finding(s) in {checked} resource and data blocks, against {source}", file=sys.stderr)
        sys.exit(1)
    print(f"provider schema: {checked} resource and data blocks in {len(files)} files match {source}")


if __name__ == "__main__":
    main()
