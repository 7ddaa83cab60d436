//! Where progress goes: stderr in the binary (a bar on a terminal, plain lines otherwise),
//! nowhere in tests or with `--quiet`. Every stage takes a `&dyn Progress`; nothing else about
//! the terminal reaches the pipeline.
//!
//! Long work of known size (a layer read, an image written) reports its bytes through a
//! [`Meter`], at most once per [`STEP`] bytes and once at the end, so a slow sink costs nothing
//! on the hot path; the sink turns bytes into a rate and an ETA.

use std::io::{self, Read, Write};

/// Bytes between two reports of a [`Meter`].
pub const STEP: u64 = 8 << 20;

/// Where progress goes (stderr in the binary; nowhere in tests).
pub trait Progress {
    /// One line of progress.
    fn message(&self, line: &str);

    /// `done` of `total` bytes of `task` (`total` 0: not known). Reported by a [`Meter`]: at
    /// most once per [`STEP`] bytes, and once with `done == total` when the task ends.
    fn bytes(&self, task: &str, done: u64, total: u64) {
        let _ = (task, done, total);
    }
}

impl<F: Fn(&str)> Progress for F {
    fn message(&self, line: &str) {
        self(line)
    }
}

/// Counts the bytes of one task and reports them to a [`Progress`] every [`STEP`] bytes.
pub struct Meter<'a> {
    progress: &'a dyn Progress,
    task: String,
    total: u64,
    next: u64,
    done: u64,
}

impl std::fmt::Debug for Meter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("task", &self.task)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl<'a> Meter<'a> {
    /// A task of `total` bytes (0 when not known); reports `0 of total` at once.
    pub fn new(progress: &'a dyn Progress, task: impl Into<String>, total: u64) -> Self {
        let meter = Meter {
            progress,
            task: task.into(),
            total,
            next: STEP,
            done: 0,
        };
        meter.progress.bytes(&meter.task, 0, total);
        meter
    }

    /// The task has reached `done` bytes.
    pub fn at(&mut self, done: u64) {
        self.done = done;
        if done >= self.next {
            self.progress.bytes(&self.task, done, self.total);
            self.next = done.saturating_add(STEP);
        }
    }

    /// The task has ended: reports its final count as the total.
    pub fn finish(self) {
        self.progress.bytes(&self.task, self.done, self.done);
    }

    /// Wraps a reader or writer whose bytes this meter counts.
    pub fn wrap<T>(self, inner: T) -> Metered<'a, T> {
        Metered { inner, meter: self }
    }
}

/// A reader or writer whose bytes a [`Meter`] counts.
#[derive(Debug)]
pub struct Metered<'a, T> {
    inner: T,
    meter: Meter<'a>,
}

impl<T> Metered<'_, T> {
    /// Ends the task (see [`Meter::finish`]) and returns the inner reader or writer.
    pub fn finish(self) -> T {
        self.meter.finish();
        self.inner
    }

    fn count(&mut self, n: usize) {
        let done = self.meter.done.saturating_add(n as u64);
        self.meter.at(done);
    }
}

impl<T: Read> Read for Metered<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count(n);
        Ok(n)
    }
}

impl<T: Write> Write for Metered<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A [`Progress`] for tests that keeps every `bytes` report, in order.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Seen(pub(crate) std::cell::RefCell<Vec<(String, u64, u64)>>);

#[cfg(test)]
impl Progress for Seen {
    fn message(&self, _: &str) {}
    fn bytes(&self, task: &str, done: u64, total: u64) {
        self.0.borrow_mut().push((task.to_owned(), done, total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_reports_at_the_start_every_step_and_at_the_end() {
        let seen = Seen::default();
        let data = vec![7u8; (2 * STEP + 5) as usize];
        let mut r = Meter::new(&seen, "layer", data.len() as u64).wrap(&data[..]);
        let mut out = Vec::new();
        io::copy(&mut r, &mut out).unwrap();
        r.finish();
        assert_eq!(out, data, "bytes pass through unchanged");
        let reports = seen.0.into_inner();
        let total = data.len() as u64;
        assert_eq!(reports.first(), Some(&("layer".to_owned(), 0, total)));
        assert_eq!(reports.last(), Some(&("layer".to_owned(), total, total)));
        // One report per step crossed, not one per read (io::copy reads 8 KiB at a time).
        assert_eq!(reports.len(), 4, "{reports:?}");
        assert!(reports.windows(2).all(|w| w[0].1 <= w[1].1), "{reports:?}");
    }

    #[test]
    fn a_metered_writer_counts_what_the_inner_writer_took() {
        let seen = Seen::default();
        let mut w = Meter::new(&seen, "image", 0).wrap(Vec::new());
        w.write_all(&[1; 10]).unwrap();
        let inner = w.finish();
        assert_eq!(inner.len(), 10);
        assert_eq!(
            seen.0.into_inner().last(),
            Some(&("image".to_owned(), 10, 10))
        );
    }
}
