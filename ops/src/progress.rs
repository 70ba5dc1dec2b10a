//! Progress bars for long work (a Scan of the connections table, reading or moving the
//! dead-letter queue), on standard error, and only for people: `--json` and a standard error
//! that is not a terminal draw nothing.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes progress bars, or hidden ones.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    shown: bool,
}

impl Progress {
    /// Bars drawn on standard error when `shown` (and it is a terminal).
    pub fn new(shown: bool) -> Self {
        Self { shown }
    }

    /// Draws nothing: for `--json` and for tests.
    pub fn hidden() -> Self {
        Self { shown: false }
    }

    /// A bar of `total` steps (`None`: a spinner with a count) labelled `what`.
    pub fn bar(&self, what: &str, total: Option<u64>) -> ProgressBar {
        if !self.shown {
            return ProgressBar::hidden();
        }
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {msg} {pos} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(what.to_owned());
        bar
    }
}
