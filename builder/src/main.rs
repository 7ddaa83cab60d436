//! The `enclave-builder` binary: parse arguments, run, map the error to an exit code.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::cell::RefCell;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use builder::progress::Progress;
use clap::Parser as _;
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

fn main() -> ExitCode {
    let cli = builder::cli::Cli::parse();
    let stdout = std::io::stdout();
    let progress = Stderr::new(std::io::stderr().is_terminal());
    match builder::run(cli, &mut stdout.lock(), &progress) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            progress.clear();
            eprintln!("error: {}", builder::error_text(&err));
            ExitCode::from(builder::exit_code(&err))
        }
    }
}

/// Progress on stderr: on a terminal, a bar per task of known size (bytes, rate, ETA) below
/// the messages; otherwise plain lines, for a long task one every [`PLAIN_EVERY`] and one when
/// it ends.
struct Stderr {
    terminal: bool,
    task: RefCell<Option<Task>>,
}

/// The task being metered.
struct Task {
    name: String,
    started: Instant,
    /// When the last plain line was printed.
    said: Instant,
    bar: Option<ProgressBar>,
}

/// How often a plain line reports a task that is still running.
const PLAIN_EVERY: Duration = Duration::from_secs(10);
/// A task shorter than this gets no closing plain line.
const PLAIN_MIN: Duration = Duration::from_secs(2);

impl Stderr {
    fn new(terminal: bool) -> Self {
        Stderr {
            terminal,
            task: RefCell::new(None),
        }
    }

    /// Removes a bar left by a task that did not end (before an error is printed).
    fn clear(&self) {
        if let Some(Task { bar: Some(bar), .. }) = self.task.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }

    fn bar(name: &str, total: u64) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            (total > 0).then_some(total),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        let template = if total > 0 {
            "{prefix} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
        } else {
            "{prefix} {spinner} {bytes} {binary_bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(name.to_owned());
        bar
    }
}

impl Progress for Stderr {
    fn message(&self, line: &str) {
        let line = format!("enclave-builder: {line}");
        match &*self.task.borrow() {
            Some(Task { bar: Some(bar), .. }) if !bar.is_finished() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn bytes(&self, name: &str, done: u64, total: u64) {
        let mut slot = self.task.borrow_mut();
        let now = Instant::now();
        if slot.as_ref().is_none_or(|t| t.name != name) {
            if let Some(Task { bar: Some(old), .. }) = slot.take() {
                old.finish_and_clear();
            }
            *slot = Some(Task {
                name: name.to_owned(),
                started: now,
                said: now,
                bar: self.terminal.then(|| Stderr::bar(name, total)),
            });
        }
        let Some(task) = slot.as_mut() else { return };
        let ended = total > 0 && done >= total;
        let elapsed = now.duration_since(task.started);
        let rate = |bytes: u64| {
            let secs = elapsed.as_secs_f64();
            if secs > 0.0 {
                format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
            } else {
                String::from("-")
            }
        };
        match &task.bar {
            Some(bar) => {
                if total > 0 && bar.length() != Some(total) {
                    bar.set_length(total);
                }
                bar.set_position(done);
                if ended {
                    // Short tasks leave nothing behind; long ones their final line.
                    if elapsed >= PLAIN_MIN {
                        bar.finish();
                    } else {
                        bar.finish_and_clear();
                    }
                }
            }
            None if ended => {
                if elapsed >= PLAIN_MIN {
                    eprintln!(
                        "enclave-builder: {name}: {} in {} ({})",
                        HumanBytes(done),
                        HumanDuration(elapsed),
                        rate(done)
                    );
                }
                *slot = None;
            }
            None if now.duration_since(task.said) >= PLAIN_EVERY => {
                task.said = now;
                let of = if total > 0 {
                    let eta = if done > 0 {
                        let left = elapsed.mul_f64((total - done.min(total)) as f64 / done as f64);
                        format!(", about {} left", HumanDuration(left))
                    } else {
                        String::new()
                    };
                    format!(
                        " of {} ({}%){eta}",
                        HumanBytes(total),
                        done.saturating_mul(100) / total
                    )
                } else {
                    String::new()
                };
                eprintln!(
                    "enclave-builder: {name}: {}{of}, {}",
                    HumanBytes(done),
                    rate(done)
                );
            }
            None => {}
        }
    }
}
