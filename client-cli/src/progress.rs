//! Progress display: bars on a terminal (indicatif), plain lines at each
//! quarter otherwise, nothing with `--quiet` or JSON output.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Files smaller than this get no plain progress lines.
const PLAIN_MIN: u64 = 8 << 20;

enum Mode {
    Off,
    Bars(MultiProgress),
    Plain,
}

/// Progress of several files at once.
pub struct Progress {
    mode: Mode,
    bars: HashMap<String, ProgressBar>,
    /// For plain lines: the last quarter printed per file.
    quarters: HashMap<String, u64>,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines when not, nothing when
    /// `quiet`.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::new())
        } else {
            Mode::Plain
        };
        Progress {
            mode,
            bars: HashMap::new(),
            quarters: HashMap::new(),
        }
    }

    /// Records that `done` of `total` bytes (0: unknown) of `name` moved.
    pub fn update(&mut self, name: &str, done: u64, total: u64) {
        match &self.mode {
            Mode::Off => {}
            Mode::Bars(multi) => {
                let bar = self.bars.entry(name.to_string()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(total));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg:24!} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
                        )
                        .expect("a valid template"),
                    );
                    bar.set_message(crate::show::esc(name).into_owned());
                    bar
                });
                if total > 0 {
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
            Mode::Plain => {
                if total < PLAIN_MIN {
                    return;
                }
                let quarter = done * 4 / total;
                let last = self.quarters.entry(name.to_string()).or_insert(0);
                if quarter > *last {
                    *last = quarter;
                    eprintln!(
                        "{}: {}% ({done} of {total} bytes)",
                        crate::show::esc(name),
                        quarter * 25
                    );
                }
            }
        }
    }

    /// Clears the bars.
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
    }
}
