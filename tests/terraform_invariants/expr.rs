//! Reading expressions (never evaluating them): traversals (`a.b["c"]`) and the references an
//! expression makes (through templates, calls, operators, collections and `for` expressions).

use hcl::expr::{Operation, TemplateExpr, TraversalOperator};
use hcl::template::{Directive, Element};
use hcl::{Expression, ObjectKey, Template};

#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Attr(String),
    Index(Expression),
    Splat,
}

/// `a.b["c"].d` as ("a", [Attr b, Index "c", Attr d]).
pub fn traversal(expr: &Expression) -> Option<(String, Vec<Seg>)> {
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

pub fn refs_of(expr: &Expression) -> Vec<(String, Vec<Seg>)> {
    let mut out = Vec::new();
    references(expr, &[], &mut out);
    out
}

pub fn first_attr(segs: &[Seg]) -> Option<&str> {
    match segs.first() {
        Some(Seg::Attr(a)) => Some(a.as_str()),
        _ => None,
    }
}

/// Does the expression reference `root.attr` (e.g. `local.name_prefix`)?
pub fn mentions(expr: &Expression, root: &str, attribute: &str) -> bool {
    refs_of(expr)
        .iter()
        .any(|(r, segs)| r == root && first_attr(segs) == Some(attribute))
}
