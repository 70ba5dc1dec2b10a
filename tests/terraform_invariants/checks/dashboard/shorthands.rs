//! One entry of a metric widget's `metrics`: a metric array, its `"."` and `"..."` shorthands
//! expanded as CloudWatch does, or a math expression.

use serde_json::Value;

use super::fields::{check_period_and_stat, kind};

/// One entry of `metrics`, its shorthands expanded against the previous one: `Some(fields)`
/// for a metric (`[namespace, name, dimension, value, ...]`), `None` for a math expression or
/// a malformed entry (reported, except entries that are not arrays: the caller reports those
/// once for the widget).
pub(super) fn metric_row(
    at: &str,
    row: &Value,
    previous: Option<&[String]>,
    violations: &mut Vec<String>,
) -> Option<Vec<String>> {
    let items = row.as_array()?;
    let (fields, options) = match items.split_last() {
        Some((Value::Object(options), rest)) => (rest, Some(options)),
        _ => (&items[..], None),
    };
    if let Some(options) = options {
        check_period_and_stat(at, options, violations);
    }
    if fields.is_empty() {
        if !options.is_some_and(|o| o.get("expression").is_some_and(Value::is_string)) {
            violations.push(format!(
                "{at}: neither a metric nor a math expression ({{expression = ...}})"
            ));
        }
        return None;
    }
    let mut strings = Vec::new();
    for (j, field) in fields.iter().enumerate() {
        match field.as_str() {
            Some(s) if !s.is_empty() => strings.push(s.to_owned()),
            _ => {
                let hint = if field.is_object() {
                    " (the options object goes last, once)"
                } else {
                    ""
                };
                violations.push(format!(
                    "{at}[{j}] is {} {field}, not a non-empty string{hint}",
                    kind(field)
                ));
                return None;
            }
        }
    }
    let expanded = match expand_shorthands(&strings, previous) {
        Ok(e) => e,
        Err(e) => {
            violations.push(format!("{at}: {e}"));
            return None;
        }
    };
    if expanded.len() < 2 {
        violations.push(format!(
            "{at}: {expanded:?} has no metric name after the namespace"
        ));
        return None;
    }
    if expanded.len() % 2 == 1 {
        violations.push(format!(
            "{at}: {expanded:?} has a dimension without a value"
        ));
        return None;
    }
    Some(expanded)
}

/// `"."`: the previous metric's field at the same position; a leading `"..."`: the previous
/// metric's fields up to where the remaining ones take over.
fn expand_shorthands(
    fields: &[String],
    previous: Option<&[String]>,
) -> Result<Vec<String>, String> {
    let uses_shorthand = fields.iter().any(|f| f == "." || f == "...");
    let Some(previous) = previous.filter(|_| uses_shorthand) else {
        if uses_shorthand {
            return Err(format!(
                "{fields:?} uses \".\" or \"...\" with no metric before it to repeat"
            ));
        }
        return Ok(fields.to_vec());
    };
    let mut expanded: Vec<String> = if fields[0] == "..." {
        let rest = &fields[1..];
        if rest.len() > previous.len() {
            return Err(format!(
                "{fields:?}: \"...\" repeats more fields than the previous metric has"
            ));
        }
        previous[..previous.len() - rest.len()]
            .iter()
            .chain(rest)
            .cloned()
            .collect()
    } else {
        fields.to_vec()
    };
    for (i, field) in expanded.iter_mut().enumerate() {
        if field == "..." {
            return Err(format!("{fields:?}: \"...\" may only come first"));
        }
        if field == "." {
            *field = previous
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{fields:?}: \".\" at {i} has nothing above it"))?;
        }
    }
    Ok(expanded)
}
