//! Reading a Prometheus text exposition, such as the local stack's `/metrics`.

/// The value of one sample in a Prometheus text exposition: `name` is the metric's name with
/// its labels as exposed (`fanout_slow_consumers_total{reason="write_timeout"}`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_sample_by_its_name_and_labels() {
        let text = "# HELP fanout_sockets Open sockets.\n\
                    # TYPE fanout_sockets gauge\n\
                    fanout_sockets 3\n\
                    fanout_sockets_total 9\n\
                    fanout_slow_consumers_total{reason=\"write_timeout\"} 2\n";
        assert_eq!(metric(text, "fanout_sockets"), Some(3.0));
        assert_eq!(
            metric(
                text,
                "fanout_slow_consumers_total{reason=\"write_timeout\"}"
            ),
            Some(2.0)
        );
        assert_eq!(metric(text, "fanout_connections"), None);
    }
}
