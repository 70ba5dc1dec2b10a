//! Resolution and evaluation: following `local.x.y` and `each.value.y` to the expressions they
//! name, expanding `for_each` into instances, a small numeric evaluator with variables at
//! their defaults (or overridden), and the bounds a variable's validation puts on it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use hcl::expr::{BinaryOperator, Operation, UnaryOperator};
use hcl::{Block, Expression};

use crate::expr::{Seg, traversal};
use crate::model::{Module, attr, key_name, literal_str, nested, show};

/// The `each.key` / `each.value` of one resource instance.
#[derive(Clone)]
pub struct Instance {
    pub key: String,
    pub value: Expression,
}

/// Follow `local.x.y` and `each.value.y` to the expression they name, as far as it goes.
pub fn resolve(
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
pub fn instances(module: &Module, block: &Block) -> Result<Vec<Option<Instance>>, String> {
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

pub fn instance_by_key(
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
pub struct Evaluator<'a> {
    module: &'a Module,
    pub overrides: BTreeMap<String, f64>,
    pub seen_vars: RefCell<BTreeSet<String>>,
}

impl<'a> Evaluator<'a> {
    pub fn new(module: &'a Module) -> Self {
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

    pub fn eval(&self, expr: &Expression, each: Option<&Instance>) -> Result<f64, String> {
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
pub fn validation_bounds(module: &Module, name: &str) -> (Option<f64>, Option<f64>) {
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

/// The keys of an object expression, through locals, `each.value` and `merge()`.
pub fn object_keys(
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
