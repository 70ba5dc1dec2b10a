//! The first connection docs/deploy.md shows ("Try it", the block marked `<!-- try-it`) works as
//! written against the stack Terraform would deploy with its defaults: the block is run by bash
//! as it is, with `terraform`, `aws`, `cargo` and `npx` replaced by shell functions that answer
//! with the outputs Terraform renders and a test secret, and record how they were called. The
//! token command's arguments are then parsed by `fanout-local`'s own options and minted by its
//! own code, with the secret the block gives it in its environment (never on a command line,
//! where `ps` shows it), and the authorizer, configured from the environment Terraform gives its
//! Lambda (read as the binary reads it), must accept the connection request the block makes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use clap::Parser;
use fanout::auth::Verifier;
use fanout::config::{AuthorizerKeys, AuthorizerSettings, Source};
use fanout::handlers::authorizer;
use fanout_local::Options;
use fanout_local::auth::JWT_SECRET_VAR;
use fanout_local::options::Command as LocalCommand;
use serde_json::Value;

use crate::model::{Module, attr, show};
use crate::render::{RenderOptions, instance_values, render_module};

/// What marks the block in docs/deploy.md.
pub const MARKER: &str = "<!-- try-it";

/// The signing secret the `aws` stand-in hands out, as Secrets Manager would the stack's.
const TEST_SECRET: &str = "dGhpcyBpcyB0aGUgdHJ5LWl0IHRlc3QncyBzaWduaW5nIHNlY3JldCwgNDggYnl0ZXM=";

/// What the `cargo` stand-in prints in place of the token it cannot mint; replaced by the token
/// `fanout-local` mints from the same arguments.
const TOKEN_PLACEHOLDER: &str = "TOKEN-MINTED-BY-FANOUT-LOCAL";

/// Where the `cargo` stand-in writes the signing secret its environment gives the token command.
const CARGO_SECRET: &str = "cargo-secret";

/// The stand-ins. Each call is recorded in `$CALLS/<n>`, the command name and its arguments
/// NUL-separated; `terraform output -raw NAME` prints `$OUTPUTS/NAME` (quoted without -raw);
/// `cargo` also writes its `FANOUT_LOCAL_JWT_SECRET`, if it has one, to `$CALLS/cargo-secret`;
/// anything unexpected is written to `$CALLS/errors`.
const STAND_INS: &str = r#"
record() { local n; n=$(find "$CALLS" -name '[0-9]*' | wc -l); printf '%s\0' "$@" > "$CALLS/$n"; }
unexpected() { printf '%s\n' "$*" >> "$CALLS/errors"; }
terraform() {
  record terraform "$@"
  if [[ $# -eq 3 && $1 == output && $2 == -raw && -f "$OUTPUTS/$3" ]]; then
    cat "$OUTPUTS/$3"
  elif [[ $# -eq 2 && $1 == output && -f "$OUTPUTS/$2" ]]; then
    printf '"%s"\n' "$(cat "$OUTPUTS/$2")"
  else
    unexpected "terraform $*: not an output of the stack (terraform output [-raw] NAME)"
  fi
}
aws() { record aws "$@"; printf '%s\n' "$SECRET"; }
cargo() {
  record cargo "$@"
  if [[ -v FANOUT_LOCAL_JWT_SECRET ]]; then printf '%s' "$FANOUT_LOCAL_JWT_SECRET" > "$CALLS/cargo-secret"; fi
  printf '%s\n' "$TOKEN_PLACEHOLDER"
}
npx() { record npx "$@"; }
"#;

/// The shell block after the marker.
fn documented_block(markdown: &str) -> Result<String, String> {
    let after = markdown
        .split_once(MARKER)
        .ok_or_else(|| format!("docs/deploy.md has no block marked {MARKER:?}"))?
        .1;
    let fence = after
        .split_once("```sh\n")
        .ok_or("the try-it marker is not followed by a ```sh block")?
        .1;
    Ok(fence
        .split_once("\n```")
        .ok_or("the try-it block is not closed")?
        .0
        .to_owned())
}

/// The names of the outputs `block` reads (`terraform output [-raw] NAME`).
fn outputs_read(block: &str) -> Vec<&str> {
    block
        .split("terraform output ")
        .skip(1)
        .map(|rest| rest.strip_prefix("-raw ").unwrap_or(rest))
        .filter_map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
        })
        .collect()
}

/// The outputs of the stack that `block` reads, as Terraform renders them with the defaults,
/// and the authorizer Lambda's environment (null when none is deployed).
fn rendered_stack(
    module: &Module,
    block: &str,
) -> Result<(BTreeMap<String, String>, Value), String> {
    let spec = "aws_lambda_function.environment";
    let mut options = RenderOptions::attributes("dev", vec![spec.to_owned()]);
    let outputs = module.outputs();
    options.exprs = outputs_read(block)
        .into_iter()
        .filter_map(|name| {
            let (_, output) = outputs.get(name)?;
            attr(output.body(), "value").map(|value| (name.to_owned(), show(value)))
        })
        .collect();
    let rendered = render_module(module, &options)?;
    let values = rendered["exprs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| match value {
            Value::String(text) => Some((name.clone(), text.clone())),
            Value::Number(n) => Some((name.clone(), n.to_string())),
            _ => None,
        })
        .collect();
    let environment = instance_values(&rendered, spec)
        .get("aws_lambda_function.this[\"authorizer\"]")
        .and_then(|blocks| blocks.get(0))
        .map(|block| block["variables"].clone())
        .unwrap_or(Value::Null);
    Ok((values, environment))
}

/// A recorded call: the command, then its arguments.
type Call = Vec<String>;

/// What the block did: the calls, in order, and the signing secret `cargo` had in its
/// environment.
struct Ran {
    calls: Vec<Call>,
    cargo_secret: Option<String>,
}

/// Runs `block` in bash with the stand-ins, answering with `outputs`.
fn run_block(block: &str, outputs: &BTreeMap<String, String>) -> Result<Ran, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "e2e-try-it-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let (outputs_dir, calls_dir) = (scratch.join("outputs"), scratch.join("calls"));
    let _ = fs::remove_dir_all(&scratch);
    for dir in [&outputs_dir, &calls_dir] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for (name, value) in outputs {
        fs::write(outputs_dir.join(name), value).map_err(|e| e.to_string())?;
    }
    let script = format!("set -euo pipefail\n{STAND_INS}\n{block}\n");
    let result = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("OUTPUTS", &outputs_dir)
        .env("CALLS", &calls_dir)
        .env("SECRET", TEST_SECRET)
        .env("TOKEN_PLACEHOLDER", TOKEN_PLACEHOLDER)
        // Only what the block sets counts, not a secret the test's own environment holds.
        .env_remove(JWT_SECRET_VAR)
        .output()
        .map_err(|e| format!("cannot run bash: {e}"));
    let calls = result.and_then(|output| {
        if !output.status.success() {
            return Err(format!(
                "the block failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(Ran {
            calls: read_calls(&calls_dir)?,
            cargo_secret: fs::read_to_string(calls_dir.join(CARGO_SECRET)).ok(),
        })
    });
    let _ = fs::remove_dir_all(&scratch);
    calls
}

fn read_calls(dir: &Path) -> Result<Vec<Call>, String> {
    if let Ok(errors) = fs::read_to_string(dir.join("errors")) {
        return Err(errors.trim().to_owned());
    }
    let mut numbered: Vec<(usize, Call)> = fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let n = path.file_name()?.to_str()?.parse().ok()?;
            let bytes = fs::read(&path).ok()?;
            let call = bytes
                .split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect();
            Some((n, call))
        })
        .collect();
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, call)| call).collect())
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Environment variables as the authorizer Lambda has them.
struct LambdaEnvironment<'a>(&'a Value);

impl Source for LambdaEnvironment<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.0[name].as_str().map(str::to_owned)
    }
}

/// The block reads the signing secret the authorizer reads (`arn`), as the string the authorizer
/// uses (its SecretString).
fn check_secret_read(aws: Option<&Call>, arn: &str) -> Result<(), String> {
    let aws = aws.ok_or("the block mints a token without reading the signing secret with `aws`")?;
    if aws.get(1..3) != Some(&["secretsmanager".to_owned(), "get-secret-value".to_owned()])
        || flag_value(aws, "--secret-id") != Some(arn)
        || flag_value(aws, "--query") != Some("SecretString")
        || flag_value(aws, "--output") != Some("text")
    {
        return Err(format!(
            "the block reads the secret with {aws:?}; the authorizer's is {arn}, read as \
             `aws secretsmanager get-secret-value --secret-id ARN --query SecretString --output text`"
        ));
    }
    Ok(())
}

/// No command line carries the signing secret: any user of the machine may read one (`ps`,
/// `/proc/PID/cmdline`), for as long as the command runs.
fn check_secret_off_command_lines(calls: &[Call]) -> Result<(), String> {
    for call in calls {
        if call
            .iter()
            .any(|arg| arg.contains(TEST_SECRET) || arg.starts_with("--jwt-secret"))
        {
            return Err(format!(
                "the block puts the signing secret on the command line of `{}` (`ps` shows \
                 it): give it to `fanout-local token` in {JWT_SECRET_VAR} instead",
                call.join(" ")
            ));
        }
    }
    Ok(())
}

/// The token `cargo` (`cargo run -p fanout-local -- token ...`) would print: its arguments
/// parsed by fanout-local's own options, the token minted by its own code with `secret`, what
/// its environment gives it as `FANOUT_LOCAL_JWT_SECRET`.
fn mint(cargo: &Call, secret: Option<&str>, now: SystemTime) -> Result<String, String> {
    let (cargo_args, program_args) = match cargo.iter().position(|a| a == "--") {
        Some(i) => (&cargo[1..i], &cargo[i + 1..]),
        None => (&cargo[1..], &[][..]),
    };
    let package = flag_value(cargo_args, "-p").or_else(|| flag_value(cargo_args, "--package"));
    if cargo_args.first().map(String::as_str) != Some("run") || package != Some("fanout-local") {
        return Err(format!(
            "the token command {cargo:?} is not `cargo run -p fanout-local -- token ...`"
        ));
    }
    let options = Options::try_parse_from(
        std::iter::once("fanout-local".to_owned()).chain(program_args.iter().cloned()),
    )
    .map_err(|e| format!("fanout-local refuses {program_args:?}: {e}"))?;
    let Some(LocalCommand::Token(mut token)) = options.command else {
        return Err(format!("{program_args:?} is not `fanout-local token`"));
    };
    // As the binary reads it from its environment (not the test's).
    token.auth.jwt_secret = Some(
        secret
            .ok_or(format!(
                "the token command gets no signing secret: set {JWT_SECRET_VAR} for it"
            ))?
            .to_owned(),
    );
    token
        .mint(now)
        .map_err(|e| format!("fanout-local token {program_args:?}: {e}"))
}

/// The documented block, run against the stack `module` renders: its token, minted by
/// `fanout-local token` from the documented arguments, passes the authorizer configured as
/// Terraform configures it, for the room the block connects to.
pub fn check_first_connection(module: &Module, markdown: &str) -> Vec<String> {
    match first_connection(module, markdown) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e],
    }
}

fn first_connection(module: &Module, markdown: &str) -> Result<(), String> {
    let block = documented_block(markdown)?;
    let (outputs, environment) =
        rendered_stack(module, &block).map_err(|e| format!("terraform/ does not render: {e}"))?;
    let settings = AuthorizerSettings::from_env(&LambdaEnvironment(&environment)).map_err(|e| {
        format!("the authorizer's environment ({environment}) is not one it starts with: {e}")
    })?;
    let AuthorizerKeys::Secret { arn } = &settings.keys else {
        return Err("by default the authorizer must verify HS256 tokens with a secret".to_owned());
    };
    let ran = run_block(&block, &outputs)?;
    check_secret_off_command_lines(&ran.calls)?;
    let calls = ran.calls;
    let find = |command: &str| calls.iter().find(|call| call[0] == command);

    // The connection: to the stack's URL, with what the block puts in its query.
    let npx = find("npx").ok_or("the block does not connect (npx wscat -c URL)")?;
    let url = flag_value(npx, "-c").ok_or(format!("{npx:?} has no -c URL"))?;
    let websocket_url = outputs
        .get("websocket_url")
        .ok_or("terraform/ has no websocket_url output")?;
    let mut query = url
        .strip_prefix(websocket_url.as_str())
        .and_then(|rest| rest.strip_prefix('?'))
        .ok_or(format!(
            "the block connects to {url}, not to the websocket_url output ({websocket_url}) with a query"
        ))?
        .to_owned();
    let now = SystemTime::now();
    if let Some(cargo) = find("cargo") {
        check_secret_read(find("aws"), arn)?;
        let secret = ran.cargo_secret.as_deref();
        query = query.replace(TOKEN_PLACEHOLDER, &mint(cargo, secret, now)?);
    }
    let pairs: Vec<(String, String)> = form_urlencoded_pairs(&query);
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let verifier = Verifier::hs256(settings.verifier.clone(), TEST_SECRET.as_bytes())
        .map_err(|e| format!("the test secret: {e}"))?;
    let request = authorizer::connect_request(
        "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/dev/$connect",
        &pairs,
        None,
    );
    let answer = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(authorizer::handle(&verifier, request, now));
    match answer {
        Ok(response) if authorizer::allows(&response) => Ok(()),
        Ok(response) => Err(format!(
            "the authorizer denies the documented connection {url}: {:?}",
            response.context
        )),
        Err(refusal) => Err(format!(
            "the authorizer refuses the documented connection {url} ({refusal}): it requires \
             iss {:?} and aud {:?}",
            settings.verifier.issuer, settings.verifier.audience
        )),
    }
}

/// `a=1&b=2` as its pairs (not percent-decoded: a room name and a token need no escaping).
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod negative {
    use super::*;
    use crate::fixtures::assert_reports;
    use crate::model::repo_root;

    fn terraform() -> Module {
        Module::from_dir(&repo_root().join("terraform"))
    }

    fn with_block(block: &str) -> String {
        format!("# Try it\n\n{MARKER} -->\n```sh\n{block}\n```\n")
    }

    const SECRET: &str = r#"SECRET="$(aws secretsmanager get-secret-value --secret-id "$(terraform output -raw jwt_secret_arn)" --query SecretString --output text)""#;

    #[test]
    fn a_connection_the_authorizer_refuses_is_reported() {
        // The issue's finding: no token at all.
        assert_reports(
            &check_first_connection(
                &terraform(),
                &with_block(r#"npx wscat -c "$(terraform output -raw websocket_url)?room=lobby""#),
            ),
            &["the authorizer refuses the documented connection"],
        );
        // A token of fanout-local's own issuer and audience, not the stack's.
        let local_defaults = format!(
            "{SECRET}\nTOKEN=\"$({JWT_SECRET_VAR}=\"$SECRET\" cargo run -q -p fanout-local -- token \
             --sub alice --rooms lobby)\"\n\
             npx wscat -c \"$(terraform output -raw websocket_url)?room=lobby&token=$TOKEN\""
        );
        assert_reports(
            &check_first_connection(&terraform(), &with_block(&local_defaults)),
            &["the authorizer refuses the documented connection"],
        );
        // The stack's issuer and audience, but a room the token does not grant.
        let other_room = format!(
            "{SECRET}\nTOKEN=\"$({JWT_SECRET_VAR}=\"$SECRET\" cargo run -q -p fanout-local -- token \
             --sub alice --rooms lobby --issuer \"$(terraform output -raw jwt_issuer)\" \
             --audience \"$(terraform output -raw jwt_audience)\")\"\n\
             npx wscat -c \"$(terraform output -raw websocket_url)?room=ops&token=$TOKEN\""
        );
        assert_reports(
            &check_first_connection(&terraform(), &with_block(&other_room)),
            &["the authorizer denies the documented connection"],
        );
        // The token the stack accepts, but minted with the secret on the command line (what the
        // block did before), or with no secret at all.
        let no_secret = format!(
            "{SECRET}\nTOKEN=\"$(cargo run -q -p fanout-local -- token --sub alice \
             --rooms lobby --issuer \"$(terraform output -raw jwt_issuer)\" \
             --audience \"$(terraform output -raw jwt_audience)\")\"\n\
             npx wscat -c \"$(terraform output -raw websocket_url)?room=lobby&token=$TOKEN\""
        );
        for on_the_command_line in ["--jwt-secret \"$SECRET\" ", "--jwt-secret=\"$SECRET\" "] {
            let block =
                no_secret.replace("token --sub", &format!("token {on_the_command_line}--sub"));
            assert_reports(
                &check_first_connection(&terraform(), &with_block(&block)),
                &["puts the signing secret on the command line"],
            );
        }
        assert_reports(
            &check_first_connection(&terraform(), &with_block(&no_secret)),
            &["the token command gets no signing secret: set FANOUT_LOCAL_JWT_SECRET"],
        );
        let exported = format!("export {JWT_SECRET_VAR}=\"$SECRET\"\n");
        let exported = no_secret.replace("TOKEN=", &format!("{exported}TOKEN="));
        assert_eq!(
            check_first_connection(&terraform(), &with_block(&exported)),
            Vec::<String>::new(),
            "exported for the whole shell is in the environment too"
        );
        // An output the stack does not have.
        assert_reports(
            &check_first_connection(
                &terraform(),
                &with_block("echo \"$(terraform output -raw jwt_secret)\""),
            ),
            &["terraform output -raw jwt_secret: not an output of the stack"],
        );
        assert_reports(
            &check_first_connection(&terraform(), "# Try it\n"),
            &["docs/deploy.md has no block marked"],
        );
    }
}
