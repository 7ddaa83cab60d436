//! Where progress messages go: stderr in the binary, nowhere in tests. Every stage takes a
//! `&dyn Progress`; nothing else about the terminal reaches the pipeline.

/// Where progress messages go (stderr in the binary; nowhere in tests).
pub trait Progress {
    /// One line of progress.
    fn message(&self, line: &str);
}

impl<F: Fn(&str)> Progress for F {
    fn message(&self, line: &str) {
        self(line)
    }
}
