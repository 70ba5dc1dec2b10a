//! `fanout-local`: runs the whole pipeline on this machine. See `--help`.

use clap::Parser;
use fanout_local::access::ADMIN_TOKEN_ENV;
use fanout_local::options::Command;
use fanout_local::{LocalStack, Options};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The connections the stack is sized for; each needs a file descriptor.
const WANTED_OPEN_FILES: u64 = 20_000;

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    if let Some(Command::Token(token)) = &options.command {
        return match token.mint(std::time::SystemTime::now()) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("fanout-local token: {error}");
                ExitCode::from(2)
            }
        };
    }
    init_logging(options.log_json);
    raise_open_file_limit();
    let auth = options.auth.describe();
    let admin_token_given = options.admin_token.is_some();

    let stack = match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(error) => {
            eprintln!("fanout-local: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("fanout-local is running ({})", stack.description());
    println!("  {auth}");
    println!("  connect:    {}?room=lobby", stack.websocket_url());
    println!("  send:       {{\"action\":\"sendmessage\",\"data\":\"Hello World\"}}");
    println!(
        "  management: {}/@connections/{{connectionId}}, signed with SigV4 by the publish key",
        stack.management_url()
    );
    match stack.publish_access_key_id() {
        Some(key) => println!(
            "  publish:    POST {} signed with SigV4 by access key {key} (wsfanout publish)",
            stack.publish_url()
        ),
        None => println!(
            "  publish:    off (no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, no --publish-credentials)"
        ),
    }
    println!(
        "  metrics:    http://{}/metrics   health: http://{}/healthz",
        stack.addr(),
        stack.addr()
    );
    if admin_token_given {
        println!(
            "  admin:      http://{}/admin/... with Authorization: Bearer ${ADMIN_TOKEN_ENV}",
            stack.addr()
        );
    } else {
        println!(
            "  admin:      http://{}/admin/... with Authorization: Bearer {}",
            stack.addr(),
            stack.admin_token()
        );
        println!(
            "              for wsfanout --local: export {ADMIN_TOKEN_ENV}={}",
            stack.admin_token()
        );
    }
    println!(
        "  pages:      only this stack's own (and --allowed-origin) may use it from a browser"
    );
    println!(
        "Ctrl-C stops it: jobs in flight finish, then no new connections, sockets close with 1001."
    );

    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("fanout-local: cannot wait for Ctrl-C ({error}); stopping");
    }
    println!("stopping...");
    stack.shutdown().await;
    ExitCode::SUCCESS
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// Raises the open-file limit toward what 10,000+ connections need, and says so when it cannot.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(WANTED_OPEN_FILES) {
        Ok(limit) if limit >= WANTED_OPEN_FILES => {
            tracing::debug!(limit, "open-file limit");
        }
        Ok(limit) => tracing::warn!(
            limit,
            "open-file limit is below {WANTED_OPEN_FILES}: about {} connections at most; \
             raise the hard limit (ulimit -Hn) to serve more",
            limit.saturating_sub(100)
        ),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}
