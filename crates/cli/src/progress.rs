//! Progress bars and informational messages on stderr, silenced by `--quiet` (and hidden by
//! indicatif when stderr is not a terminal).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The user-facing side of a command: progress and notes, respecting `--quiet`.
pub struct Ui {
    quiet: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        Self { quiet }
    }

    /// A bar over `len` steps of `what`.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed_precise}, eta {eta})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        bar
    }

    /// A spinner for work of unknown length.
    pub fn spinner(&self, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let sp = ProgressBar::new_spinner();
        sp.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
        sp.set_message(what.to_string());
        sp.enable_steady_tick(Duration::from_millis(120));
        sp
    }

    /// An informational line on stderr.
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A warning on stderr, printed even with `--quiet`: it says something is wrong with the
    /// output.
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("{}", msg.as_ref());
    }
}
