//! The docs' tables of settings hold to their one definition (`fanout::config::settings`):
//! docs/architecture.md's table of variables states each setting's default and bounds,
//! docs/deploy.md's table of Terraform variables the defaults of those that set one, and
//! docs/local.md's table of options the default and bounds of each flag that sets one
//! (`fanout_local::options::SETTING_FLAGS`).

use std::time::Duration;

use fanout::config::settings::{self, Setting, Unit};
use fanout_local::options::SETTING_FLAGS;

use crate::checks::settings::Mapped;
use crate::fixtures::assert_reports;

/// The rows of the markdown tables in `text` whose header's first cell is `first`, as cells.
fn table_rows(text: &str, first: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let Some(line) = line.trim().strip_prefix('|') else {
            inside = false;
            continue;
        };
        // Cells split at `|` but not at an escaped `\|`.
        let mut cells = vec![String::new()];
        let mut escaped = false;
        for c in line.chars() {
            match c {
                '|' if !escaped => cells.push(String::new()),
                _ => cells.last_mut().unwrap().push(c),
            }
            escaped = c == '\\';
        }
        let cells: Vec<String> = cells.iter().map(|c| c.trim().to_owned()).collect();
        if cells[0].eq_ignore_ascii_case(first) {
            inside = true;
        } else if inside && !cells[0].starts_with("---") {
            rows.push(cells);
        }
    }
    rows
}

/// The `backticked` names in a cell.
fn names(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// A cell without backticks and thousands separators, dashes between numbers read as "to".
fn plain(cell: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = cell.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        match c {
            '`' => {}
            ',' if between_digits => {}
            '–' if between_digits => out.push_str(" to "),
            c => out.push(c),
        }
    }
    out
}

/// The whole number at the start of `text`.
fn leading_number(text: &str) -> Option<u64> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `250ms`, `30s`, `10m`, `2h`, `7d`.
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * seconds))
}

/// Whether `shown` is `value` of the setting: a number, or for a flag of a setting in seconds or
/// milliseconds, a duration.
fn shows(setting: &Setting, shown: &str, value: u64, as_duration: bool) -> bool {
    let shown = shown.trim_matches(|c: char| "()`;:.,".contains(c));
    if as_duration && matches!(setting.unit, Unit::Seconds | Unit::Millis) {
        duration(shown) == Some(setting.duration(value))
    } else {
        shown.parse() == Ok(value)
    }
}

/// Whether `cell` states the setting's bounds as `MIN to MAX`.
fn states_bounds(setting: &Setting, cell: &str, as_duration: bool) -> bool {
    let words: Vec<&str> = cell.split_whitespace().collect();
    words.windows(3).any(|w| {
        w[1] == "to"
            && shows(setting, w[0], setting.min, as_duration)
            && shows(setting, w[2], setting.max, as_duration)
    })
}

/// docs/architecture.md, "Configuration": one row per setting, its default cell reading
/// `DEFAULT (MIN to MAX...` (`unset` for a setting without a default).
pub fn check_architecture_table(text: &str) -> Vec<String> {
    let mut violations = Vec::new();
    let rows = table_rows(text, "variable");
    for setting in settings::ALL {
        let row = rows
            .iter()
            .find(|row| names(&row[0]).contains(&setting.var));
        let Some(row) = row else {
            violations.push(format!(
                "docs/architecture.md: no row for {} in the table of variables",
                setting.var
            ));
            continue;
        };
        let at = format!("docs/architecture.md, {}", setting.var);
        if names(&row[0]).len() != 1 {
            violations.push(format!("{at}: a setting has a row of its own"));
        }
        let default = plain(row.get(2).map_or("", String::as_str));
        let stated = match setting.default {
            Some(value) => leading_number(&default) == Some(value),
            None => default.starts_with("unset"),
        };
        if !stated {
            violations.push(format!(
                "{at}: the default reads {default:?}, the setting's is {}",
                setting.default.map_or("unset".into(), |v| v.to_string())
            ));
        }
        if !states_bounds(setting, &default, false) {
            violations.push(format!(
                "{at}: the default cell {default:?} does not state the bounds, ({} to {})",
                setting.min, setting.max
            ));
        }
    }
    violations
}

/// docs/deploy.md, "Settings worth knowing": each default of a variable that sets a setting is
/// the setting's (or the variable's own, where Terraform's differs).
pub fn check_deploy_table(text: &str, mapped: &[Mapped]) -> Vec<String> {
    let mut violations = Vec::new();
    for row in table_rows(text, "variable") {
        let variables = names(&row[0]);
        let defaults: Vec<&str> = match variables.len() {
            1 => vec![row[1].as_str()],
            _ => row[1].split(", ").collect(),
        };
        for (i, variable) in variables.iter().enumerate() {
            let Some(m) = mapped.iter().find(|m| m.variable == *variable) else {
                continue;
            };
            let shown = plain(defaults.get(i).copied().unwrap_or_default());
            let stated = match m.own_default {
                Some((hcl, _)) => shown.starts_with(hcl),
                None => leading_number(&shown) == m.setting.default,
            };
            if !stated {
                violations.push(format!(
                    "docs/deploy.md, {variable}: the default reads {shown:?}, the variable's is {}",
                    m.own_default
                        .map_or(format!("{:?}", m.setting.default), |(hcl, _)| hcl.into())
                ));
            }
        }
    }
    violations
}

/// docs/local.md, "Options": each flag that sets a setting names its variable and default
/// (`` `VAR` or DEFAULT ``) and states its bounds (`MIN to MAX`, durations for durations).
pub fn check_local_table(text: &str) -> Vec<String> {
    let mut violations = Vec::new();
    let rows = table_rows(text, "option");
    for (flag, setting) in SETTING_FLAGS {
        let row = rows.iter().find(|row| {
            names(&row[0])
                .first()
                .is_some_and(|option| option.split_whitespace().next() == Some(*flag))
        });
        let Some(row) = row else {
            violations.push(format!("docs/local.md: no row for {flag}"));
            continue;
        };
        let at = format!("docs/local.md, {flag}");
        let default = &row[1];
        let named = names(default).first() == Some(&setting.var);
        let shown = default.rsplit(" or ").next().unwrap_or_default();
        let stated = match setting.default {
            Some(value) => shows(setting, shown, value, true),
            None => true,
        };
        if !named || !stated {
            violations.push(format!(
                "{at}: the default reads {default:?}, not `{}` or {}",
                setting.var,
                setting
                    .default
                    .map_or("its meaning".into(), |v| v.to_string())
            ));
        }
        if !states_bounds(setting, &plain(&row[2]), true) {
            violations.push(format!(
                "{at}: {:?} does not state the bounds, {} to {} ({})",
                row[2], setting.min, setting.max, setting.var
            ));
        }
    }
    violations
}

// Negative checks

#[test]
fn docs_checkers_reject_wrong_defaults_and_bounds() {
    let post = &settings::POST_TIMEOUT_MS;
    let beyond = format!(
        "{} ({} to {})",
        post.default_value(),
        post.min,
        post.max + 1
    );
    let architecture = format!(
        "\
| variable | used by | default | meaning |
| --- | --- | --- | --- |
| `POST_TIMEOUT_MS` | worker | {beyond} | per-call timeout |
| `HISTORY_SIZE`, `HISTORY_TTL_SECONDS` | sendmessage | 100, 3600 | kept |
| `FANOUT_CONCURRENCY` | worker | 255 (1 to 1,000) | posts |
"
    );
    let violations = check_architecture_table(&architecture);
    assert_reports(
        &violations,
        &[
            &format!("POST_TIMEOUT_MS: the default cell {beyond:?} does not state the bounds"),
            "HISTORY_SIZE: a setting has a row of its own",
            "FANOUT_CONCURRENCY: the default reads \"255 (1 to 1000)\"",
            "no row for PAGE_LIMIT",
        ],
    );
    assert!(
        !violations
            .iter()
            .any(|v| v.contains("FANOUT_CONCURRENCY: the default cell")),
        "1 to 1,000 are FANOUT_CONCURRENCY's bounds: {violations:?}"
    );

    let mapping = crate::checks::settings::TERRAFORM_SETTINGS;
    let deploy = "\
| Variable | Default | Notes |
| --- | --- | --- |
| `fanout_concurrency`, `post_timeout_ms` | 256, 2000 | worker tuning |
| `room_split_ways` | 2 | split |
";
    assert_reports(
        &check_deploy_table(deploy, mapping),
        &[
            "post_timeout_ms: the default reads \"2000\"",
            "room_split_ways: the default reads \"2\"",
        ],
    );
    assert!(check_deploy_table(deploy, mapping).len() == 2);

    let local = "\
| option | default | meaning |
| --- | --- | --- |
| `--fanout-concurrency N` | `FANOUT_CONCURRENCY` or 256 | posts (1 to 100) |
| `--retry-budget D` | `RETRY_BUDGET_SECONDS` or 10m | retried (1m to 24h) |
| `--history-ttl D` | 1h | kept (`1m` to `7d`) |
";
    let violations = check_local_table(local);
    assert_reports(
        &violations,
        &[
            "--fanout-concurrency: \"posts (1 to 100)\" does not state the bounds",
            "--retry-budget: the default reads \"`RETRY_BUDGET_SECONDS` or 10m\"",
            "--history-ttl: the default reads \"1h\"",
            "no row for --page-limit",
        ],
    );
    assert!(
        !violations
            .iter()
            .any(|v| v.contains("--retry-budget: \"") || v.contains("--history-ttl: \"")),
        "durations state those bounds: {violations:?}"
    );
}
