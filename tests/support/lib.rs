//! What only the end-to-end tests need: reading the local stack's Prometheus metrics. What the
//! tests of every crate share (moto, the HTTP and WebSocket clients) is in `fanout-test-support`.

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
