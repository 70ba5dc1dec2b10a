//! What only the end-to-end tests need: the local stack's options, and reading its Prometheus
//! metrics. What the tests of every crate share (moto, the HTTP and WebSocket clients) is in
//! `fanout-test-support`.

use fanout_local::Options;

/// The local stack on the embedded backend and a free port, with `extra` flags.
pub fn options(extra: &[&str]) -> Options {
    let mut args = vec![
        "fanout-local",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "memory",
    ];
    args.extend_from_slice(extra);
    clap::Parser::parse_from(args)
}

/// The value of one sample in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}
