//! Invariants of the Terraform configuration in `terraform/`, checked by reading its HCL.
//!
//! Terraform cannot download providers here, so `terraform validate` is out of reach; these
//! checks pin what matters for this stack instead:
//! - the fan-out queue's visibility timeout is at least six times the worker's timeout, for the
//!   defaults and across the variables' validated ranges;
//! - every Lambda zip is a binary that `cargo lambda build` produces (the `[[bin]]` names of
//!   functions/Cargo.toml), and every binary is deployed;
//! - no IAM statement uses a wildcard action, and `*` resources appear only for the X-Ray
//!   actions that have no resource-level permissions;
//! - every resource name includes the workspace;
//! - each function gets exactly the environment the Rust code reads;
//! - every `var.`, `local.`, resource and data reference resolves, and the example tfvars set only
//!   declared variables; variables are typed and described, outputs described.
//!
//! Each checker is a function over a parsed module that returns its violations, so the negative
//! tests at the end run the same checkers over inline HCL that breaks each rule.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use hcl::expr::{BinaryOperator, Operation, TemplateExpr, TraversalOperator, UnaryOperator};
use hcl::template::{Directive, Element};
use hcl::{Block, Body, Expression, ObjectKey, Structure, Template};

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The `.tf` files of one module, parsed.
struct Module {
    files: Vec<(String, Body)>,
}

impl Module {
    fn from_dir(dir: &Path) -> Module {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "tf"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no .tf files in {}", dir.display());
        let files = paths
            .iter()
            .map(|p| {
                let src = fs::read_to_string(p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                let body = hcl::parse(&src)
                    .unwrap_or_else(|e| panic!("cannot parse {}: {e}", p.display()));
                (p.file_name().unwrap().to_string_lossy().into_owned(), body)
            })
            .collect();
        Module { files }
    }

    fn parse_snippet(name: &str, src: &str) -> Module {
        let body = hcl::parse(src).unwrap_or_else(|e| panic!("cannot parse snippet {name}: {e}"));
        Module {
            files: vec![(name.to_owned(), body)],
        }
    }

    /// Top-level blocks with this identifier, with the file they are in.
    fn blocks<'a>(&'a self, ident: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> + 'a {
        self.files.iter().flat_map(move |(file, body)| {
            body.blocks()
                .filter(move |b| b.identifier() == ident)
                .map(move |b| (file.as_str(), b))
        })
    }

    /// `resource` (or `data`) blocks as (file, type, name, block).
    fn labelled<'a>(&'a self, ident: &'a str) -> Vec<Labelled<'a>> {
        self.blocks(ident)
            .filter_map(|(file, block)| match block.labels() {
                [kind, name] => Some(Labelled {
                    file,
                    kind: kind.as_str(),
                    name: name.as_str(),
                    block,
                }),
                _ => None,
            })
            .collect()
    }

    fn resources(&self) -> Vec<Labelled<'_>> {
        self.labelled("resource")
    }

    fn resource(&self, kind: &str, name: &str) -> Option<Labelled<'_>> {
        self.resources()
            .into_iter()
            .find(|r| r.kind == kind && r.name == name)
    }

    fn variables(&self) -> BTreeMap<String, (&str, &Block)> {
        self.blocks("variable")
            .filter_map(|(file, b)| {
                b.labels()
                    .first()
                    .map(|l| (l.as_str().to_owned(), (file, b)))
            })
            .collect()
    }

    fn outputs(&self) -> BTreeMap<String, (&str, &Block)> {
        self.blocks("output")
            .filter_map(|(file, b)| {
                b.labels()
                    .first()
                    .map(|l| (l.as_str().to_owned(), (file, b)))
            })
            .collect()
    }

    fn locals(&self) -> BTreeMap<String, &Expression> {
        self.blocks("locals")
            .flat_map(|(_, b)| {
                b.body()
                    .attributes()
                    .map(|a| (a.key().to_owned(), a.expr()))
            })
            .collect()
    }

    fn var_default(&self, name: &str) -> Option<&Expression> {
        self.variables()
            .get(name)
            .and_then(|(_, b)| attr(b.body(), "default"))
    }
}

struct Labelled<'a> {
    file: &'a str,
    kind: &'a str,
    name: &'a str,
    block: &'a Block,
}

impl Labelled<'_> {
    fn address(&self) -> String {
        format!("{}.{} ({})", self.kind, self.name, self.file)
    }
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn nested<'a>(body: &'a Body, ident: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == ident)
}

fn show(expr: &Expression) -> String {
    expr.to_string()
}

/// `[[bin]] name = "..."` entries of functions/Cargo.toml: what `cargo lambda build` produces.
fn cargo_bins(cargo_toml: &str) -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    let mut in_bin = false;
    for line in cargo_toml.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            bins.insert(value.trim().trim_matches('"').to_owned());
        }
    }
    bins
}

// ---------------------------------------------------------------------------------------------
// Expressions: traversals, references, templates
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Attr(String),
    Index(Expression),
    Splat,
}

/// `a.b["c"].d` as ("a", [Attr b, Index "c", Attr d]).
fn traversal(expr: &Expression) -> Option<(String, Vec<Seg>)> {
    match expr {
        Expression::Variable(v) => Some((v.as_str().to_owned(), Vec::new())),
        Expression::Traversal(t) => {
            let (root, mut segs) = traversal(&t.expr)?;
            for op in &t.operators {
                segs.push(match op {
                    TraversalOperator::GetAttr(id) => Seg::Attr(id.as_str().to_owned()),
                    TraversalOperator::Index(e) => Seg::Index(e.clone()),
                    TraversalOperator::LegacyIndex(i) => Seg::Index(Expression::from(*i)),
                    TraversalOperator::AttrSplat | TraversalOperator::FullSplat => Seg::Splat,
                });
            }
            Some((root, segs))
        }
        _ => None,
    }
}

fn template_of(t: &TemplateExpr) -> Result<Template, String> {
    let raw = t.to_string();
    raw.parse::<Template>()
        .map_err(|e| format!("cannot parse template \"{raw}\": {e}"))
}

fn template_exprs(template: &Template, out: &mut Vec<Expression>) {
    for element in template.elements() {
        match element {
            Element::Literal(_) => {}
            Element::Interpolation(i) => out.push(i.expr.clone()),
            Element::Directive(directive) => match directive.as_ref() {
                Directive::If(d) => {
                    out.push(d.cond_expr.clone());
                    template_exprs(&d.true_template, out);
                    if let Some(f) = &d.false_template {
                        template_exprs(f, out);
                    }
                }
                Directive::For(d) => {
                    out.push(d.collection_expr.clone());
                    template_exprs(&d.template, out);
                }
            },
        }
    }
}

/// Every traversal in an expression (through templates, calls, operators, collections), as
/// root plus the attribute names that follow it. Names bound by `for` expressions are skipped.
fn references(expr: &Expression, bound: &[String], out: &mut Vec<(String, Vec<Seg>)>) {
    if let Some((root, segs)) = traversal(expr) {
        if !bound.contains(&root) {
            out.push((root, segs.clone()));
        }
        for seg in segs {
            if let Seg::Index(index) = seg {
                references(&index, bound, out);
            }
        }
        if let Expression::Traversal(t) = expr
            && traversal(&t.expr).is_none()
        {
            references(&t.expr, bound, out);
        }
        return;
    }
    match expr {
        Expression::Array(items) => items.iter().for_each(|e| references(e, bound, out)),
        Expression::Object(object) => {
            for (key, value) in object {
                if let ObjectKey::Expression(k) = key {
                    references(k, bound, out);
                }
                references(value, bound, out);
            }
        }
        Expression::TemplateExpr(t) => {
            let mut exprs = Vec::new();
            if let Ok(template) = template_of(t) {
                template_exprs(&template, &mut exprs);
            }
            exprs.iter().for_each(|e| references(e, bound, out));
        }
        Expression::Traversal(t) => references(&t.expr, bound, out),
        Expression::FuncCall(call) => call.args.iter().for_each(|e| references(e, bound, out)),
        Expression::Parenthesis(inner) => references(inner, bound, out),
        Expression::Conditional(c) => {
            references(&c.cond_expr, bound, out);
            references(&c.true_expr, bound, out);
            references(&c.false_expr, bound, out);
        }
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => references(&u.expr, bound, out),
            Operation::Binary(b) => {
                references(&b.lhs_expr, bound, out);
                references(&b.rhs_expr, bound, out);
            }
        },
        Expression::ForExpr(f) => {
            references(&f.collection_expr, bound, out);
            let mut inner: Vec<String> = bound.to_vec();
            inner.push(f.value_var.as_str().to_owned());
            if let Some(k) = &f.key_var {
                inner.push(k.as_str().to_owned());
            }
            if let Some(k) = &f.key_expr {
                references(k, &inner, out);
            }
            references(&f.value_expr, &inner, out);
            if let Some(c) = &f.cond_expr {
                references(c, &inner, out);
            }
        }
        _ => {}
    }
}

fn refs_of(expr: &Expression) -> Vec<(String, Vec<Seg>)> {
    let mut out = Vec::new();
    references(expr, &[], &mut out);
    out
}

fn first_attr(segs: &[Seg]) -> Option<&str> {
    match segs.first() {
        Some(Seg::Attr(a)) => Some(a.as_str()),
        _ => None,
    }
}

/// Does the expression reference `root.attr` (e.g. `local.name_prefix`)?
fn mentions(expr: &Expression, root: &str, attribute: &str) -> bool {
    refs_of(expr)
        .iter()
        .any(|(r, segs)| r == root && first_attr(segs) == Some(attribute))
}

fn literal_str(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(s) => Some(s.as_str()),
        _ => None,
    }
}

fn key_name(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(id) => Some(id.as_str().to_owned()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.clone()),
        ObjectKey::Expression(Expression::Variable(v)) => Some(v.as_str().to_owned()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution: locals, for_each instances, and a small numeric evaluator
// ---------------------------------------------------------------------------------------------

/// The `each.key` / `each.value` of one resource instance.
#[derive(Clone)]
struct Instance {
    key: String,
    value: Expression,
}

/// Follow `local.x.y` and `each.value.y` to the expression they name, as far as it goes.
fn resolve(
    module: &Module,
    expr: &Expression,
    each: Option<&Instance>,
) -> Result<Expression, String> {
    let Some((root, segs)) = traversal(expr) else {
        return match expr {
            Expression::Parenthesis(inner) => resolve(module, inner, each),
            other => Ok(other.clone()),
        };
    };
    let (start, rest): (Expression, &[Seg]) = match (root.as_str(), segs.first()) {
        ("local", Some(Seg::Attr(name))) => {
            let locals = module.locals();
            let value = locals
                .get(name)
                .ok_or_else(|| format!("local.{name} is not declared"))?;
            ((*value).clone(), &segs[1..])
        }
        ("each", Some(Seg::Attr(a))) if a == "value" => {
            let instance =
                each.ok_or_else(|| format!("{} outside a for_each resource", show(expr)))?;
            (instance.value.clone(), &segs[1..])
        }
        ("each", Some(Seg::Attr(a))) if a == "key" => {
            let instance =
                each.ok_or_else(|| format!("{} outside a for_each resource", show(expr)))?;
            return Ok(Expression::String(instance.key.clone()));
        }
        _ => return Ok(expr.clone()),
    };
    let mut current = resolve(module, &start, each)?;
    for seg in rest {
        let name = match seg {
            Seg::Attr(a) => a.clone(),
            Seg::Index(Expression::String(s)) => s.clone(),
            other => return Err(format!("cannot follow {other:?} in {}", show(expr))),
        };
        current = match &current {
            Expression::Object(object) => object
                .iter()
                .find(|(k, _)| key_name(k).as_deref() == Some(name.as_str()))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("{} has no key {name}", show(expr)))?,
            other => return Err(format!("{} is not an object: {}", show(expr), show(other))),
        };
        current = resolve(module, &current, each)?;
    }
    Ok(current)
}

/// The instances of a resource: one per for_each key, or a single unnamed one.
fn instances(module: &Module, block: &Block) -> Result<Vec<Option<Instance>>, String> {
    let Some(for_each) = attr(block.body(), "for_each") else {
        return Ok(vec![None]);
    };
    let collection = resolve(module, for_each, None)?;
    match &collection {
        Expression::Object(object) => object
            .iter()
            .map(|(k, v)| {
                key_name(k)
                    .map(|key| {
                        Some(Instance {
                            key,
                            value: v.clone(),
                        })
                    })
                    .ok_or_else(|| format!("for_each key is not static: {k:?}"))
            })
            .collect(),
        Expression::FuncCall(call) if call.name.name.as_str() == "toset" => match call.args.first()
        {
            Some(Expression::Array(items)) => items
                .iter()
                .map(|item| {
                    literal_str(item)
                        .map(|s| {
                            Some(Instance {
                                key: s.to_owned(),
                                value: item.clone(),
                            })
                        })
                        .ok_or_else(|| format!("toset element is not a literal: {}", show(item)))
                })
                .collect(),
            _ => Err(format!("cannot expand for_each = {}", show(for_each))),
        },
        _ => Err(format!("cannot expand for_each = {}", show(for_each))),
    }
}

fn instance_by_key(
    module: &Module,
    block: &Block,
    key: Option<&str>,
) -> Result<Option<Instance>, String> {
    let all = instances(module, block)?;
    match key {
        None => Ok(all.into_iter().next().flatten()),
        Some(k) => all
            .into_iter()
            .flatten()
            .find(|i| i.key == k)
            .map(Some)
            .ok_or_else(|| format!("no instance [\"{k}\"]")),
    }
}

/// Numeric evaluation with variables at their defaults unless overridden.
struct Evaluator<'a> {
    module: &'a Module,
    overrides: BTreeMap<String, f64>,
    seen_vars: RefCell<BTreeSet<String>>,
}

impl<'a> Evaluator<'a> {
    fn new(module: &'a Module) -> Self {
        Evaluator {
            module,
            overrides: BTreeMap::new(),
            seen_vars: RefCell::new(BTreeSet::new()),
        }
    }

    fn var(&self, name: &str) -> Result<f64, String> {
        self.seen_vars.borrow_mut().insert(name.to_owned());
        if let Some(v) = self.overrides.get(name) {
            return Ok(*v);
        }
        let default = self
            .module
            .var_default(name)
            .ok_or_else(|| format!("var.{name} has no default"))?;
        self.eval(default, None)
    }

    fn eval(&self, expr: &Expression, each: Option<&Instance>) -> Result<f64, String> {
        match expr {
            Expression::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
            Expression::Parenthesis(inner) => self.eval(inner, each),
            Expression::Operation(op) => match op.as_ref() {
                Operation::Unary(u) if u.operator == UnaryOperator::Neg => {
                    Ok(-self.eval(&u.expr, each)?)
                }
                Operation::Binary(b) => {
                    let (l, r) = (self.eval(&b.lhs_expr, each)?, self.eval(&b.rhs_expr, each)?);
                    match b.operator {
                        BinaryOperator::Plus => Ok(l + r),
                        BinaryOperator::Minus => Ok(l - r),
                        BinaryOperator::Mul => Ok(l * r),
                        BinaryOperator::Div => Ok(l / r),
                        other => Err(format!(
                            "operator {other:?} is not numeric in {}",
                            show(expr)
                        )),
                    }
                }
                _ => Err(format!("cannot evaluate {}", show(expr))),
            },
            Expression::FuncCall(call) if matches!(call.name.name.as_str(), "max" | "min") => {
                let values = call
                    .args
                    .iter()
                    .map(|a| self.eval(a, each))
                    .collect::<Result<Vec<_>, _>>()?;
                let fold = if call.name.name.as_str() == "max" {
                    f64::max
                } else {
                    f64::min
                };
                values
                    .into_iter()
                    .reduce(fold)
                    .ok_or_else(|| format!("{} without arguments", call.name.name))
            }
            _ => match traversal(expr) {
                Some((root, segs)) if root == "var" => match segs.as_slice() {
                    [Seg::Attr(name)] => self.var(name),
                    _ => Err(format!("cannot evaluate {}", show(expr))),
                },
                Some((root, _)) if root == "local" || root == "each" => {
                    let resolved = resolve(self.module, expr, each)?;
                    if &resolved == expr {
                        return Err(format!("cannot resolve {}", show(expr)));
                    }
                    self.eval(&resolved, each)
                }
                _ => Err(format!("cannot evaluate {} statically", show(expr))),
            },
        }
    }
}

/// Bounds a variable's validation puts on it: `var.x >= A && var.x <= B`.
fn validation_bounds(module: &Module, name: &str) -> (Option<f64>, Option<f64>) {
    fn walk(expr: &Expression, name: &str, lo: &mut Option<f64>, hi: &mut Option<f64>) {
        let Expression::Operation(op) = expr else {
            if let Expression::Parenthesis(inner) = expr {
                walk(inner, name, lo, hi);
            }
            return;
        };
        let Operation::Binary(b) = op.as_ref() else {
            return;
        };
        if b.operator == BinaryOperator::And {
            walk(&b.lhs_expr, name, lo, hi);
            walk(&b.rhs_expr, name, lo, hi);
            return;
        }
        let is_var = |e: &Expression| matches!(traversal(e), Some((r, s)) if r == "var" && s == [Seg::Attr(name.to_owned())]);
        let num = |e: &Expression| match e {
            Expression::Number(n) => n.as_f64(),
            _ => None,
        };
        let (op, value) = if is_var(&b.lhs_expr) {
            (b.operator, num(&b.rhs_expr))
        } else if is_var(&b.rhs_expr) {
            let flipped = match b.operator {
                BinaryOperator::Less => BinaryOperator::Greater,
                BinaryOperator::LessEq => BinaryOperator::GreaterEq,
                BinaryOperator::Greater => BinaryOperator::Less,
                BinaryOperator::GreaterEq => BinaryOperator::LessEq,
                other => other,
            };
            (flipped, num(&b.lhs_expr))
        } else {
            return;
        };
        let Some(v) = value else { return };
        match op {
            BinaryOperator::GreaterEq => *lo = Some(v),
            BinaryOperator::Greater => *lo = Some(v + 1.0),
            BinaryOperator::LessEq => *hi = Some(v),
            BinaryOperator::Less => *hi = Some(v - 1.0),
            _ => {}
        }
    }
    let (mut lo, mut hi) = (None, None);
    if let Some((_, block)) = module.variables().get(name) {
        for validation in nested(block.body(), "validation") {
            if let Some(cond) = attr(validation.body(), "condition") {
                walk(cond, name, &mut lo, &mut hi);
            }
        }
    }
    (lo, hi)
}

/// `aws_lambda_function.this["worker"].arn` → the function block and its instance.
fn lambda_target<'m>(
    module: &'m Module,
    expr: &Expression,
) -> Result<(Labelled<'m>, Option<Instance>), String> {
    let (root, segs) =
        traversal(expr).ok_or_else(|| format!("{} is not a reference", show(expr)))?;
    if root != "aws_lambda_function" {
        return Err(format!(
            "{} does not name an aws_lambda_function",
            show(expr)
        ));
    }
    let name = first_attr(&segs).ok_or_else(|| format!("{} has no resource name", show(expr)))?;
    let key = match segs.get(1) {
        Some(Seg::Index(Expression::String(k))) => Some(k.as_str()),
        _ => None,
    };
    let function = module
        .resource("aws_lambda_function", name)
        .ok_or_else(|| format!("aws_lambda_function.{name} is not declared"))?;
    let instance = instance_by_key(module, function.block, key)?;
    Ok((function, instance))
}

// ---------------------------------------------------------------------------------------------
// Checkers: each returns its violations, empty when the module satisfies the invariant
// ---------------------------------------------------------------------------------------------

/// For every SQS event source mapping: the source queue's visibility timeout is at least six
/// times the consuming function's timeout, at the defaults and at the validated bounds of every
/// variable either expression depends on.
fn check_visibility_timeout(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    let mappings: Vec<_> = module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_lambda_event_source_mapping")
        .collect();
    let mut sqs_mappings = 0;
    for mapping in mappings {
        let Some(source) = attr(mapping.block.body(), "event_source_arn") else {
            continue;
        };
        let Some((root, segs)) = traversal(source) else {
            continue;
        };
        if root != "aws_sqs_queue" {
            continue;
        }
        sqs_mappings += 1;
        let queue_name = first_attr(&segs).unwrap_or_default().to_owned();
        let Some(queue) = module.resource("aws_sqs_queue", &queue_name) else {
            violations.push(format!(
                "{}: aws_sqs_queue.{queue_name} is not declared",
                mapping.address()
            ));
            continue;
        };
        let Some(visibility) = attr(queue.block.body(), "visibility_timeout_seconds") else {
            violations.push(format!(
                "{}: no visibility_timeout_seconds (SQS defaults to 30 s), consumed by {}",
                queue.address(),
                mapping.address()
            ));
            continue;
        };
        let Some(function_ref) = attr(mapping.block.body(), "function_name") else {
            violations.push(format!("{}: no function_name", mapping.address()));
            continue;
        };
        let (function, instance) = match lambda_target(module, function_ref) {
            Ok(target) => target,
            Err(e) => {
                violations.push(format!("{}: {e}", mapping.address()));
                continue;
            }
        };
        let Some(timeout) = attr(function.block.body(), "timeout") else {
            violations.push(format!(
                "{}: no timeout (Lambda defaults to 3 s)",
                function.address()
            ));
            continue;
        };

        // Which variables matter? Evaluate once at the defaults and record them.
        let probe = Evaluator::new(module);
        let (vt, ft) = match (
            probe.eval(visibility, None),
            probe.eval(timeout, instance.as_ref()),
        ) {
            (Ok(vt), Ok(ft)) => (vt, ft),
            (Err(e), _) | (_, Err(e)) => {
                violations.push(format!(
                    "{} / {}: cannot evaluate the timeouts: {e}",
                    queue.address(),
                    function.address()
                ));
                continue;
            }
        };
        let mut scenarios: Vec<(String, f64, f64)> = vec![("the defaults".to_owned(), vt, ft)];
        for var in probe.seen_vars.borrow().iter() {
            let (lo, hi) = validation_bounds(module, var);
            for bound in [lo, hi].into_iter().flatten() {
                let mut evaluator = Evaluator::new(module);
                evaluator.overrides.insert(var.clone(), bound);
                if let (Ok(vt), Ok(ft)) = (
                    evaluator.eval(visibility, None),
                    evaluator.eval(timeout, instance.as_ref()),
                ) {
                    scenarios.push((format!("var.{var} = {bound}"), vt, ft));
                }
            }
        }
        for (scenario, vt, ft) in scenarios {
            if vt < 6.0 * ft {
                violations.push(format!(
                    "{}: visibility_timeout_seconds = {} is {vt} s with {scenario}, less than 6 x the timeout of {}{} ({} = {ft} s): jobs would be redelivered while still being processed",
                    queue.address(),
                    show(visibility),
                    function.address(),
                    instance.as_ref().map(|i| format!("[\"{}\"]", i.key)).unwrap_or_default(),
                    show(timeout),
                ));
            }
        }
    }
    if sqs_mappings == 0 {
        violations.push("no aws_lambda_event_source_mapping from an aws_sqs_queue: the worker is not wired to the fan-out queue".to_owned());
    }
    violations
}

/// Render `"${path.module}/../target/lambda/${each.key}/bootstrap.zip"` for one instance.
fn render_path(expr: &Expression, instance: Option<&Instance>) -> Result<String, String> {
    match expr {
        Expression::String(s) => Ok(s.clone()),
        Expression::TemplateExpr(t) => {
            let template = template_of(t)?;
            let mut out = String::new();
            for element in template.elements() {
                match element {
                    Element::Literal(s) => out.push_str(s),
                    Element::Interpolation(i) => match traversal(&i.expr) {
                        Some((root, segs))
                            if root == "path" && first_attr(&segs) == Some("module") =>
                        {
                            out.push_str("${path.module}")
                        }
                        Some((root, segs))
                            if root == "each" && first_attr(&segs) == Some("key") =>
                        {
                            let instance =
                                instance.ok_or("each.key outside a for_each resource")?;
                            out.push_str(&instance.key)
                        }
                        _ => {
                            return Err(format!(
                                "cannot resolve ${{{}}} statically",
                                show(&i.expr)
                            ));
                        }
                    },
                    Element::Directive(_) => {
                        return Err("template directives are not supported".into());
                    }
                }
            }
            Ok(out)
        }
        other => Err(format!("not a path template: {}", show(other))),
    }
}

/// The binary a function instance deploys, from its `filename`.
fn function_binary(function: &Labelled<'_>, instance: Option<&Instance>) -> Result<String, String> {
    let body = function.block.body();
    let filename =
        attr(body, "filename").ok_or("no filename (the zip must be a local artifact)")?;
    let path = render_path(filename, instance)?;
    path.strip_prefix("${path.module}/../target/lambda/")
        .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
        .filter(|bin| !bin.is_empty() && !bin.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("filename renders to \"{path}\", not \"${{path.module}}/../target/lambda/<bin>/bootstrap.zip\"")
        })
}

/// Every function deploys `target/lambda/<bin>/bootstrap.zip` for a `[[bin]]` of
/// functions/Cargo.toml, with a matching source_code_hash and the custom runtime; every binary
/// is deployed.
fn check_function_artifacts(module: &Module, bins: &BTreeSet<String>) -> Vec<String> {
    let mut violations = Vec::new();
    let mut deployed = BTreeSet::new();
    for function in module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_lambda_function")
    {
        let body = function.block.body();
        let instances = match instances(module, function.block) {
            Ok(i) => i,
            Err(e) => {
                violations.push(format!("{}: {e}", function.address()));
                continue;
            }
        };
        for instance in instances {
            let at = format!(
                "{}{}",
                function.address(),
                instance
                    .as_ref()
                    .map(|i| format!(" instance [\"{}\"]", i.key))
                    .unwrap_or_default()
            );
            let bin = match function_binary(&function, instance.as_ref()) {
                Ok(bin) => bin,
                Err(e) => {
                    violations.push(format!("{at}: {e}"));
                    continue;
                }
            };
            if !bins.contains(&bin) {
                violations.push(format!(
                    "{at}: deploys target/lambda/{bin}/bootstrap.zip but functions/Cargo.toml has no [[bin]] \"{bin}\" (cargo lambda builds only {bins:?})"
                ));
            }
            deployed.insert(bin.clone());

            let hash_ok = match attr(body, "source_code_hash") {
                Some(Expression::FuncCall(call))
                    if call.name.name.as_str() == "filebase64sha256" =>
                {
                    call.args
                        .first()
                        .and_then(|arg| render_path(arg, instance.as_ref()).ok())
                        .is_some_and(|p| {
                            p == format!("${{path.module}}/../target/lambda/{bin}/bootstrap.zip")
                        })
                }
                _ => false,
            };
            if !hash_ok {
                violations.push(format!(
                    "{at}: source_code_hash must be filebase64sha256() of the same zip, or a rebuilt binary is not redeployed"
                ));
            }
            if attr(body, "runtime").and_then(literal_str) != Some("provided.al2023") {
                violations.push(format!(
                    "{at}: runtime must be \"provided.al2023\" (a Rust bootstrap binary)"
                ));
            }
            if attr(body, "handler").and_then(literal_str) != Some("bootstrap") {
                violations.push(format!("{at}: handler must be \"bootstrap\""));
            }
        }
    }
    for missing in bins.difference(&deployed) {
        violations.push(format!(
            "functions/Cargo.toml builds [[bin]] \"{missing}\" but no aws_lambda_function deploys target/lambda/{missing}/bootstrap.zip"
        ));
    }
    violations
}

/// Actions that have no resource-level permissions, so "*" is their only valid resource.
const RESOURCE_WILDCARD_ONLY: &[&str] = &["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

fn check_statement(
    at: &str,
    actions: Result<Vec<String>, String>,
    resources: Option<Result<Vec<String>, String>>,
    principals: Vec<String>,
    violations: &mut Vec<String>,
) {
    let actions = match actions {
        Ok(a) => a,
        Err(e) => {
            violations.push(format!("{at}: {e}"));
            return;
        }
    };
    for action in &actions {
        if action.contains('*') || action.contains('?') {
            violations.push(format!(
                "{at}: wildcard action \"{action}\"; list the actions the code calls"
            ));
        }
    }
    match resources {
        None => {}
        Some(Err(e)) => violations.push(format!("{at}: {e}")),
        Some(Ok(resources)) => {
            for resource in resources {
                let arn_wildcard = resource.starts_with("arn:")
                    && resource.splitn(6, ':').nth(5).is_some_and(|r| r == "*");
                if resource == "*" || arn_wildcard {
                    let scopable: Vec<&String> = actions
                        .iter()
                        .filter(|a| !RESOURCE_WILDCARD_ONLY.contains(&a.as_str()))
                        .collect();
                    if !scopable.is_empty() || actions.is_empty() {
                        violations.push(format!(
                            "{at}: resource \"{resource}\" for {scopable:?}, which support resource-level permissions; name the table, queue, log group or API"
                        ));
                    }
                }
            }
        }
    }
    for principal in principals {
        if principal == "*" {
            violations.push(format!(
                "{at}: principal \"*\" opens the policy to everyone"
            ));
        }
    }
}

fn string_list(expr: Option<&Expression>, what: &str) -> Result<Vec<String>, String> {
    match expr {
        None => Ok(Vec::new()),
        Some(Expression::String(s)) => Ok(vec![s.clone()]),
        Some(Expression::Array(items)) => items
            .iter()
            .map(|item| match item {
                Expression::String(s) => Ok(s.clone()),
                // References and templates name specific resources; only literals can be "*".
                Expression::TemplateExpr(_) | Expression::Traversal(_) if what == "resources" => {
                    Ok(show(item))
                }
                other => Err(format!(
                    "{what} must be literal strings to be checked, found {}",
                    show(other)
                )),
            })
            .collect(),
        Some(other)
            if what == "resources"
                && matches!(
                    other,
                    Expression::TemplateExpr(_) | Expression::Traversal(_)
                ) =>
        {
            Ok(vec![show(other)])
        }
        Some(other) => Err(format!(
            "{what} must be a list of literal strings, found {}",
            show(other)
        )),
    }
}

/// jsonencode({ Statement = [...] }) policies anywhere in resource arguments.
fn json_policy_statements<'e>(
    expr: &'e Expression,
    out: &mut Vec<&'e hcl::Object<ObjectKey, Expression>>,
) {
    match expr {
        Expression::Object(object) => {
            for (key, value) in object {
                if key_name(key).as_deref() == Some("Statement") {
                    match value {
                        Expression::Array(items) => items.iter().for_each(|i| {
                            if let Expression::Object(o) = i {
                                out.push(o)
                            }
                        }),
                        Expression::Object(o) => out.push(o),
                        _ => {}
                    }
                } else {
                    json_policy_statements(value, out);
                }
            }
        }
        Expression::Array(items) => items.iter().for_each(|i| json_policy_statements(i, out)),
        Expression::FuncCall(call) => call
            .args
            .iter()
            .for_each(|a| json_policy_statements(a, out)),
        Expression::Parenthesis(inner) => json_policy_statements(inner, out),
        _ => {}
    }
}

/// No wildcard actions; "*" resources only for actions without resource-level permissions; no
/// NotAction/NotResource; no "*" principal. Covers aws_iam_policy_document data sources and
/// jsonencode'd policies in resources.
fn check_iam(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    let mut statements = 0;
    for doc in module
        .labelled("data")
        .into_iter()
        .filter(|d| d.kind == "aws_iam_policy_document")
    {
        if doc
            .block
            .body()
            .blocks()
            .any(|b| b.identifier() == "dynamic")
        {
            violations.push(format!(
                "data.{}: dynamic blocks cannot be checked statically; write the statements out",
                doc.address()
            ));
        }
        for (n, statement) in nested(doc.block.body(), "statement").enumerate() {
            statements += 1;
            let body = statement.body();
            let sid = attr(body, "sid")
                .and_then(literal_str)
                .map(str::to_owned)
                .unwrap_or(format!("#{n}"));
            let at = format!("data.{} statement {sid}", doc.address());
            for forbidden in ["not_actions", "not_resources"] {
                if attr(body, forbidden).is_some() {
                    violations.push(format!(
                        "{at}: {forbidden} grants everything else; list what is allowed"
                    ));
                }
            }
            let principals = nested(body, "principals")
                .chain(nested(body, "not_principals"))
                .flat_map(|p| {
                    string_list(attr(p.body(), "identifiers"), "identifiers").unwrap_or_default()
                })
                .collect();
            let resources = attr(body, "resources").map(|r| string_list(Some(r), "resources"));
            let has_principals = nested(body, "principals").next().is_some();
            if resources.is_none() && !has_principals {
                violations.push(format!(
                    "{at}: an identity policy statement without resources applies to \"*\""
                ));
            }
            check_statement(
                &at,
                string_list(attr(body, "actions"), "actions"),
                resources,
                principals,
                &mut violations,
            );
        }
    }
    for resource in module.resources() {
        for attribute in resource.block.body().attributes() {
            let mut found = Vec::new();
            json_policy_statements(attribute.expr(), &mut found);
            for (n, statement) in found.into_iter().enumerate() {
                statements += 1;
                let get = |k: &str| {
                    statement
                        .iter()
                        .find(|(key, _)| key_name(key).as_deref() == Some(k))
                        .map(|(_, v)| v)
                };
                let at = format!("{} {} statement #{n}", resource.address(), attribute.key());
                for forbidden in ["NotAction", "NotResource"] {
                    if get(forbidden).is_some() {
                        violations.push(format!(
                            "{at}: {forbidden} grants everything else; list what is allowed"
                        ));
                    }
                }
                let principals = match get("Principal") {
                    Some(Expression::String(s)) => vec![s.clone()],
                    Some(Expression::Object(o)) => o
                        .iter()
                        .flat_map(|(_, v)| string_list(Some(v), "identifiers").unwrap_or_default())
                        .collect(),
                    _ => Vec::new(),
                };
                let resources = get("Resource").map(|r| string_list(Some(r), "resources"));
                check_statement(
                    &at,
                    string_list(get("Action"), "actions"),
                    resources,
                    principals,
                    &mut violations,
                );
            }
        }
    }
    if statements == 0 {
        violations.push("no IAM policy statements found: nothing was checked".to_owned());
    }
    violations
}

const NAME_ATTRIBUTES: &[&str] = &[
    "name",
    "name_prefix",
    "function_name",
    "dashboard_name",
    "alarm_name",
];

/// Does the expression reference local.name_prefix or terraform.workspace, directly or through
/// other locals?
fn includes_workspace(module: &Module, expr: &Expression, depth: usize) -> bool {
    if mentions(expr, "local", "name_prefix") || mentions(expr, "terraform", "workspace") {
        return true;
    }
    let locals = module.locals();
    depth < 8
        && refs_of(expr).iter().any(|(root, segs)| {
            root == "local"
                && first_attr(segs)
                    .and_then(|name| locals.get(name))
                    .is_some_and(|value| includes_workspace(module, value, depth + 1))
        })
}

/// A reference to another managed resource's attribute (e.g. the function_name of a
/// permission): that resource's own name is what gets checked.
fn names_other_resource(expr: &Expression) -> bool {
    const NOT_RESOURCES: &[&str] = &[
        "var",
        "local",
        "each",
        "count",
        "path",
        "terraform",
        "self",
        "data",
    ];
    matches!(traversal(expr), Some((root, segs)) if !NOT_RESOURCES.contains(&root.as_str()) && segs.len() >= 2)
}

/// Every naming attribute of every resource references local.name_prefix or
/// terraform.workspace (directly or through a local), and local.name_prefix itself includes
/// terraform.workspace.
fn check_names_include_workspace(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    let locals = module.locals();
    match locals.get("name_prefix") {
        Some(prefix) if mentions(prefix, "terraform", "workspace") => {}
        Some(prefix) => violations.push(format!(
            "local.name_prefix = {} does not include terraform.workspace: two workspaces would share names",
            show(prefix)
        )),
        None => violations.push("local.name_prefix is not declared".to_owned()),
    }
    let mut named = 0;
    for resource in module.resources() {
        for key in NAME_ATTRIBUTES {
            let Some(expr) = attr(resource.block.body(), key) else {
                continue;
            };
            if names_other_resource(expr) {
                continue;
            }
            named += 1;
            if !includes_workspace(module, expr, 0) {
                violations.push(format!(
                    "{}: {key} = {} does not include the workspace; reference local.name_prefix or terraform.workspace",
                    resource.address(),
                    show(expr)
                ));
            }
        }
    }
    if named == 0 {
        violations.push("no named resources found: nothing was checked".to_owned());
    }
    violations
}

/// Environment variable names each binary reads (besides RUST_LOG and WORKSPACE, which all get).
fn environment_contract() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        (
            "connect",
            vec!["CONNECTIONS_TABLE", "CONNECTION_TTL_SECONDS"],
        ),
        ("disconnect", vec!["CONNECTIONS_TABLE"]),
        (
            "sendmessage",
            vec!["CONNECTIONS_TABLE", "FANOUT_QUEUE_URL", "MAX_DATA_BYTES"],
        ),
        ("default", vec![]),
        (
            "worker",
            vec![
                "CONNECTIONS_TABLE",
                "ROOM_INDEX_NAME",
                "FANOUT_QUEUE_URL",
                "MANAGEMENT_ENDPOINT",
                "FANOUT_CONCURRENCY",
                "POST_TIMEOUT_MS",
                "DEADLINE_MARGIN_MS",
                "DELIVERY_MODE",
                "METRICS_NAMESPACE",
            ],
        ),
    ])
}

fn object_keys(
    module: &Module,
    expr: &Expression,
    each: Option<&Instance>,
) -> Result<BTreeSet<String>, String> {
    match resolve(module, expr, each)? {
        Expression::Object(object) => object
            .iter()
            .map(|(k, _)| key_name(k).ok_or_else(|| format!("non-static key {k:?}")))
            .collect(),
        Expression::FuncCall(call) if call.name.name.as_str() == "merge" => {
            let mut keys = BTreeSet::new();
            for arg in &call.args {
                keys.extend(object_keys(module, arg, each)?);
            }
            Ok(keys)
        }
        other => Err(format!("cannot list the keys of {}", show(&other))),
    }
}

/// Each function instance gets exactly RUST_LOG, WORKSPACE and the variables its binary reads.
fn check_environment(module: &Module) -> Vec<String> {
    let contract = environment_contract();
    let mut violations = Vec::new();
    for function in module
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_lambda_function")
    {
        let instances = match instances(module, function.block) {
            Ok(i) => i,
            Err(e) => {
                violations.push(format!("{}: {e}", function.address()));
                continue;
            }
        };
        for instance in instances {
            let Ok(bin) = function_binary(&function, instance.as_ref()) else {
                continue;
            };
            let at = format!("{} ({bin})", function.address());
            let Some(expected) = contract.get(bin.as_str()) else {
                continue;
            };
            let mut expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
            expected.extend(["RUST_LOG".to_owned(), "WORKSPACE".to_owned()]);
            let variables = nested(function.block.body(), "environment")
                .next()
                .and_then(|env| attr(env.body(), "variables"));
            let actual = match variables {
                None => BTreeSet::new(),
                Some(v) => match object_keys(module, v, instance.as_ref()) {
                    Ok(keys) => keys,
                    Err(e) => {
                        violations.push(format!("{at}: {e}"));
                        continue;
                    }
                },
            };
            let missing: Vec<_> = expected.difference(&actual).collect();
            let extra: Vec<_> = actual.difference(&expected).collect();
            if !missing.is_empty() {
                violations.push(format!(
                    "{at}: environment lacks {missing:?}, which the binary reads"
                ));
            }
            if !extra.is_empty() {
                violations.push(format!(
                    "{at}: environment has {extra:?}, which the binary does not read"
                ));
            }
        }
    }
    violations
}

/// Every var., local., data. and resource reference names something declared.
fn check_references(module: &Module) -> Vec<String> {
    let variables = module.variables();
    let locals = module.locals();
    let resources: BTreeSet<(String, String)> = module
        .resources()
        .iter()
        .map(|r| (r.kind.to_owned(), r.name.to_owned()))
        .collect();
    let data: BTreeSet<(String, String)> = module
        .labelled("data")
        .iter()
        .map(|r| (r.kind.to_owned(), r.name.to_owned()))
        .collect();
    const BUILTIN_ROOTS: &[&str] = &["each", "count", "path", "terraform", "self"];
    let mut violations = Vec::new();
    for (file, body) in &module.files {
        let mut exprs: Vec<(String, Expression)> = Vec::new();
        fn collect(body: &Body, at: &str, out: &mut Vec<(String, Expression)>) {
            for structure in body.iter() {
                match structure {
                    // A variable's type constraint (string, map(string), ...) is not a reference.
                    Structure::Attribute(a) if a.key() == "type" && at.contains(" variable ") => {}
                    Structure::Attribute(a) => {
                        out.push((format!("{at}{}", a.key()), a.expr().clone()))
                    }
                    Structure::Block(b) => {
                        let labels: Vec<&str> = b.labels().iter().map(|l| l.as_str()).collect();
                        let inner = format!("{at}{} {}: ", b.identifier(), labels.join("."));
                        collect(b.body(), &inner, out);
                    }
                }
            }
        }
        collect(body, &format!("{file}: "), &mut exprs);
        for (at, expr) in exprs {
            for (root, segs) in refs_of(&expr) {
                let name = first_attr(&segs).map(str::to_owned);
                let ok = match root.as_str() {
                    "var" => name.as_ref().is_some_and(|n| variables.contains_key(n)),
                    "local" => name.as_ref().is_some_and(|n| locals.contains_key(n)),
                    "data" => match (segs.first(), segs.get(1)) {
                        (Some(Seg::Attr(kind)), Some(Seg::Attr(name))) => {
                            data.contains(&(kind.clone(), name.clone()))
                        }
                        _ => false,
                    },
                    r if BUILTIN_ROOTS.contains(&r) => true,
                    // Anything else is a resource reference (for-expression names are excluded
                    // by references()).
                    kind => name
                        .as_ref()
                        .is_some_and(|n| resources.contains(&(kind.to_owned(), n.clone()))),
                };
                if !ok {
                    let depth = if root == "data" { 2 } else { 1 };
                    let shown: Vec<String> = std::iter::once(root.clone())
                        .chain(segs.iter().take(depth).filter_map(|s| match s {
                            Seg::Attr(a) => Some(a.clone()),
                            _ => None,
                        }))
                        .collect();
                    violations.push(format!("{at}: {} is not declared", shown.join(".")));
                }
            }
        }
    }
    violations
}

/// Variables are typed, described and (for numbers and enumerations) validated; outputs described.
fn check_documented(module: &Module) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, (file, block)) in module.variables() {
        let body = block.body();
        if attr(body, "type").is_none() {
            violations.push(format!("variable \"{name}\" ({file}): no type"));
        }
        if attr(body, "description")
            .and_then(literal_str)
            .is_none_or(|d| d.trim().is_empty())
        {
            violations.push(format!("variable \"{name}\" ({file}): no description"));
        }
        let is_number = attr(body, "type").is_some_and(|t| show(t) == "number");
        if is_number && nested(body, "validation").next().is_none() {
            violations.push(format!(
                "variable \"{name}\" ({file}): a number without a validation block"
            ));
        }
    }
    for (name, (file, block)) in module.outputs() {
        if attr(block.body(), "description")
            .and_then(literal_str)
            .is_none_or(|d| d.trim().is_empty())
        {
            violations.push(format!("output \"{name}\" ({file}): no description"));
        }
    }
    violations
}

/// The example tfvars set only declared variables.
fn check_tfvars(module: &Module, name: &str, src: &str) -> Vec<String> {
    let variables = module.variables();
    match hcl::parse(src) {
        Err(e) => vec![format!("{name}: does not parse: {e}")],
        Ok(body) => body
            .attributes()
            .filter(|a| !variables.contains_key(a.key()))
            .map(|a| {
                format!(
                    "{name}: sets \"{}\", which is not a declared variable",
                    a.key()
                )
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The invariants, over terraform/
// ---------------------------------------------------------------------------------------------

fn terraform() -> Module {
    Module::from_dir(&repo_root().join("terraform"))
}

fn bins() -> BTreeSet<String> {
    let path = repo_root().join("functions/Cargo.toml");
    let bins = cargo_bins(
        &fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    );
    assert!(!bins.is_empty(), "{} declares no [[bin]]", path.display());
    bins
}

fn assert_clean(what: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{what}: {} violation(s):\n  - {}",
        violations.len(),
        violations.join("\n  - ")
    );
}

#[test]
fn fanout_visibility_timeout_is_at_least_six_worker_timeouts() {
    assert_clean(
        "visibility timeout vs worker timeout",
        check_visibility_timeout(&terraform()),
    );
}

#[test]
fn every_function_zip_is_a_cargo_lambda_binary_and_every_binary_is_deployed() {
    assert_clean(
        "Lambda artifacts",
        check_function_artifacts(&terraform(), &bins()),
    );
}

#[test]
fn iam_has_no_wildcard_actions_or_scopable_wildcard_resources() {
    assert_clean("IAM least privilege", check_iam(&terraform()));
}

#[test]
fn every_resource_name_includes_the_workspace() {
    assert_clean(
        "per-workspace names",
        check_names_include_workspace(&terraform()),
    );
}

#[test]
fn every_function_gets_exactly_the_environment_its_binary_reads() {
    assert_clean("function environment", check_environment(&terraform()));
}

#[test]
fn every_reference_resolves() {
    assert_clean("references", check_references(&terraform()));
}

#[test]
fn variables_are_typed_described_and_validated_and_outputs_described() {
    assert_clean("documentation", check_documented(&terraform()));
}

#[test]
fn example_tfvars_set_only_declared_variables() {
    let module = terraform();
    let dir = repo_root().join("terraform/examples");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tfvars"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["dev.tfvars", "prod.tfvars"] {
        assert!(
            names.iter().any(|n| n == expected),
            "terraform/examples/{expected} is missing (found {names:?})"
        );
    }
    let violations = files
        .iter()
        .flat_map(|p| {
            check_tfvars(
                &module,
                &p.display().to_string(),
                &fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    assert_clean("example tfvars", violations);
}

#[test]
fn the_contract_binaries_are_the_cargo_bins() {
    let contract: BTreeSet<String> = environment_contract()
        .keys()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(
        bins(),
        contract,
        "functions/Cargo.toml's [[bin]] names differ from the Lambda contract (connect, disconnect, sendmessage, default, worker)"
    );
}

// ---------------------------------------------------------------------------------------------
// Negative checks: each checker catches a violation (so none can pass vacuously)
// ---------------------------------------------------------------------------------------------

const WORKER_SNIPPET: &str = r#"
variable "worker_timeout_seconds" {
  type        = number
  default     = 60
  description = "t"
  validation {
    condition     = var.worker_timeout_seconds >= 10 && var.worker_timeout_seconds <= 900
    error_message = "range"
  }
}
locals {
  name_prefix = "x-${terraform.workspace}"
  functions = {
    worker = {
      timeout     = var.worker_timeout_seconds
      environment = { CONNECTIONS_TABLE = "t" }
    }
  }
}
resource "aws_lambda_function" "this" {
  for_each         = local.functions
  function_name    = "${local.name_prefix}-${each.key}"
  filename         = "${path.module}/../target/lambda/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${path.module}/../target/lambda/${each.key}/bootstrap.zip")
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  timeout          = each.value.timeout
  environment {
    variables = merge({ RUST_LOG = "info", WORKSPACE = terraform.workspace }, each.value.environment)
  }
}
resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn = aws_sqs_queue.fanout.arn
  function_name    = aws_lambda_function.this["worker"].arn
}
"#;

fn with_queue(visibility: &str) -> Module {
    Module::parse_snippet(
        "snippet.tf",
        &format!(
            "{WORKER_SNIPPET}\nresource \"aws_sqs_queue\" \"fanout\" {{\n  name = \"${{local.name_prefix}}-q\"\n  visibility_timeout_seconds = {visibility}\n}}\n"
        ),
    )
}

#[test]
fn visibility_checker_accepts_six_times_and_rejects_less() {
    assert_clean(
        "6 x var",
        check_visibility_timeout(&with_queue("6 * var.worker_timeout_seconds")),
    );

    let too_short = check_visibility_timeout(&with_queue("var.worker_timeout_seconds"));
    assert!(
        too_short
            .iter()
            .any(|v| v.contains("aws_sqs_queue.fanout") && v.contains("the defaults")),
        "a visibility timeout equal to the worker timeout must be reported: {too_short:?}"
    );

    // A constant that is fine at the default (360 = 6 x 60) breaks at the validated maximum.
    let constant = check_visibility_timeout(&with_queue("360"));
    assert!(
        constant
            .iter()
            .any(|v| v.contains("var.worker_timeout_seconds = 900")),
        "a hard-coded 360 s must be reported at worker_timeout_seconds = 900: {constant:?}"
    );

    let unwired =
        check_visibility_timeout(&Module::parse_snippet("empty.tf", "locals {\n  a = 1\n}\n"));
    assert!(
        !unwired.is_empty(),
        "a module without an SQS event source mapping must be reported"
    );
}

#[test]
fn artifact_checker_rejects_unknown_binaries_and_undeployed_ones() {
    let module = with_queue("6 * var.worker_timeout_seconds");
    let worker_only: BTreeSet<String> = ["worker".to_owned()].into();
    assert_clean(
        "worker only",
        check_function_artifacts(&module, &worker_only),
    );

    let bins: BTreeSet<String> = ["connect".to_owned(), "worker2".to_owned()].into();
    let violations = check_function_artifacts(&module, &bins);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("no [[bin]] \"worker\"")),
        "a zip for a binary cargo lambda does not build must be reported: {violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.contains("[[bin]] \"connect\" but no aws_lambda_function")),
        "a binary no function deploys must be reported: {violations:?}"
    );

    let wrong_path = Module::parse_snippet(
        "wrong.tf",
        r#"
resource "aws_lambda_function" "w" {
  function_name    = "x"
  filename         = "${path.module}/../dist/worker.zip"
  source_code_hash = filebase64sha256("${path.module}/../dist/worker.zip")
  runtime          = "nodejs20.x"
  handler          = "index.handler"
}
"#,
    );
    let violations = check_function_artifacts(&wrong_path, &worker_only);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("not \"${path.module}/../target/lambda/<bin>/bootstrap.zip\"")),
        "{violations:?}"
    );
}

#[test]
fn cargo_bins_reads_bin_sections_only() {
    let toml = r#"
[package]
name = "fanout"

[[bin]]
name = "connect"
path = "src/bin/connect.rs"

[dependencies]
name = "not-a-bin"

[[bin]]
path = "src/bin/worker.rs"
name = "worker" # trailing comment
"#;
    assert_eq!(
        cargo_bins(toml),
        BTreeSet::from(["connect".to_owned(), "worker".to_owned()])
    );
}

#[test]
fn iam_checker_rejects_wildcards_and_allows_xray() {
    let ok = Module::parse_snippet(
        "ok.tf",
        r#"
data "aws_iam_policy_document" "ok" {
  statement {
    sid       = "XRay"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
  statement {
    sid       = "Table"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.t.arn, "${aws_dynamodb_table.t.arn}/index/*"]
  }
}
"#,
    );
    assert_clean("scoped policy", check_iam(&ok));

    let bad = Module::parse_snippet(
        "bad.tf",
        r#"
data "aws_iam_policy_document" "bad" {
  statement {
    sid       = "Star"
    actions   = ["dynamodb:*"]
    resources = [aws_dynamodb_table.t.arn]
  }
  statement {
    sid       = "AnyTable"
    actions   = ["dynamodb:GetItem", "xray:PutTraceSegments"]
    resources = ["*"]
  }
  statement {
    sid         = "Not"
    not_actions = ["iam:*"]
    resources   = ["arn:aws:dynamodb:eu-west-1:123456789012:*"]
  }
}
resource "aws_iam_role_policy" "inline" {
  name   = "x"
  role   = "r"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "*", Resource = "*" }]
  })
}
"#,
    );
    let violations = check_iam(&bad);
    for needle in [
        "statement Star: wildcard action \"dynamodb:*\"",
        "statement AnyTable: resource \"*\" for [\"dynamodb:GetItem\"]",
        "statement Not: not_actions",
        "resource \"arn:aws:dynamodb:eu-west-1:123456789012:*\"",
        "policy statement #0: wildcard action \"*\"",
        "policy statement #0: resource \"*\"",
    ] {
        assert!(
            violations.iter().any(|v| v.contains(needle)),
            "expected a violation containing {needle:?}, got:\n{}",
            violations.join("\n")
        );
    }

    let empty = check_iam(&Module::parse_snippet("none.tf", "locals {\n  a = 1\n}\n"));
    assert!(
        !empty.is_empty(),
        "a module without IAM statements must be reported, not pass"
    );
}

#[test]
fn name_checker_rejects_fixed_names_and_a_prefix_without_workspace() {
    let good = Module::parse_snippet(
        "good.tf",
        r#"
locals {
  name_prefix = "${var.project_name}-${terraform.workspace}"
}
resource "aws_sqs_queue" "q" {
  name = "${local.name_prefix}-fanout"
}
resource "aws_apigatewayv2_stage" "s" {
  name = terraform.workspace
}
locals {
  dashboard_name = "${local.name_prefix}-fanout"
}
resource "aws_cloudwatch_dashboard" "d" {
  dashboard_name = local.dashboard_name
}
resource "aws_lambda_permission" "p" {
  function_name = aws_lambda_function.f.function_name
}
"#,
    );
    assert_clean("named by workspace", check_names_include_workspace(&good));

    let bad = Module::parse_snippet(
        "bad.tf",
        r#"
locals {
  name_prefix = "${var.project_name}-prod"
  topic_name  = "${var.project_name}-alarms"
}
resource "aws_sqs_queue" "q" {
  name = "fanout"
}
resource "aws_sns_topic" "t" {
  name = local.topic_name
}
resource "aws_cloudwatch_dashboard" "d" {
  dashboard_name = "${var.project_name}-dash"
}
"#,
    );
    let violations = check_names_include_workspace(&bad);
    for needle in [
        "local.name_prefix = ",
        "aws_sqs_queue.q (bad.tf): name = ",
        "aws_sns_topic.t (bad.tf): name = local.topic_name",
        "aws_cloudwatch_dashboard.d (bad.tf): dashboard_name",
    ] {
        assert!(
            violations.iter().any(|v| v.contains(needle)),
            "expected {needle:?} in {violations:?}"
        );
    }
}

#[test]
fn environment_checker_rejects_missing_and_unknown_variables() {
    let module = with_queue("6 * var.worker_timeout_seconds");
    let violations = check_environment(&module);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("(worker)") && v.contains("METRICS_NAMESPACE")),
        "a worker without METRICS_NAMESPACE must be reported: {violations:?}"
    );
    let extra = Module::parse_snippet(
        "extra.tf",
        &WORKER_SNIPPET.replace(
            "CONNECTIONS_TABLE = \"t\"",
            "CONNECTIONS_TABLE = \"t\", TABLE_NAME = \"t\"",
        ),
    );
    assert!(
        check_environment(&extra)
            .iter()
            .any(|v| v.contains("\"TABLE_NAME\"")),
        "an environment variable no binary reads must be reported"
    );
}

#[test]
fn reference_checker_rejects_undeclared_names() {
    let module = Module::parse_snippet(
        "refs.tf",
        r#"
variable "known" {
  type        = string
  description = "k"
}
locals {
  ok   = var.known
  list = [for item in [1, 2] : item * 2]
}
resource "aws_sqs_queue" "q" {
  name   = "${var.unknown}-${local.missing}"
  policy = data.aws_iam_policy_document.absent.json
  tags   = { dlq = aws_sqs_queue.absent.arn, ok = aws_sqs_queue.q.arn }
}
"#,
    );
    let violations = check_references(&module);
    for needle in [
        "var.unknown",
        "local.missing",
        "data.aws_iam_policy_document.absent",
        "aws_sqs_queue.absent",
    ] {
        assert!(
            violations
                .iter()
                .any(|v| v.contains(&format!("{needle} is not declared"))),
            "expected {needle} in {violations:?}"
        );
    }
    assert_eq!(
        violations.len(),
        4,
        "only the four undeclared names: {violations:?}"
    );
}

#[test]
fn documentation_checker_rejects_untyped_undescribed_unvalidated() {
    let module = Module::parse_snippet(
        "vars.tf",
        r#"
variable "a" {
  default = 1
}
variable "b" {
  type        = number
  description = "b"
}
output "o" {
  value = 1
}
"#,
    );
    let violations = check_documented(&module);
    for needle in [
        "\"a\" (vars.tf): no type",
        "\"a\" (vars.tf): no description",
        "\"b\" (vars.tf): a number without a validation",
        "output \"o\" (vars.tf): no description",
    ] {
        assert!(
            violations.iter().any(|v| v.contains(needle)),
            "expected {needle:?} in {violations:?}"
        );
    }
}

#[test]
fn tfvars_checker_rejects_undeclared_variables() {
    let module = with_queue("6 * var.worker_timeout_seconds");
    assert_clean(
        "declared",
        check_tfvars(&module, "ok.tfvars", "worker_timeout_seconds = 90\n"),
    );
    let violations = check_tfvars(&module, "bad.tfvars", "worker_timeout = 90\n");
    assert!(
        violations.iter().any(|v| v.contains("\"worker_timeout\"")),
        "{violations:?}"
    );
}
