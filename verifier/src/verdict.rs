//! Named checks and the verdict they add up to.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;

/// One named check: what the release or policy expects, what the evidence shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable, dotted name: `signature`, `measurement`, `policy.debug`, `rebuilders`, ...
    pub name: String,
    /// Whether the check held.
    pub passed: bool,
    /// What was required.
    pub expected: String,
    /// What was found.
    pub actual: String,
}

/// Every check made, in order. Fails closed: an empty verdict does not pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    checks: Vec<Check>,
}

impl Verdict {
    /// Records a check that passes exactly when `expected == actual`.
    pub fn check(&mut self, name: &str, expected: impl fmt::Display, actual: impl fmt::Display) {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        let passed = expected == actual;
        self.record(name, passed, expected, actual);
    }

    /// Records a check whose outcome the caller decided (a signature, a bound, a set).
    pub fn record(
        &mut self,
        name: &str,
        passed: bool,
        expected: impl fmt::Display,
        actual: impl fmt::Display,
    ) {
        self.checks.push(Check {
            name: name.to_string(),
            passed,
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }

    /// Appends another verdict's checks, each name prefixed with `prefix.`.
    pub fn extend_prefixed(&mut self, prefix: &str, other: Verdict) {
        for mut c in other.checks {
            c.name = alloc::format!("{prefix}.{}", c.name);
            self.checks.push(c);
        }
    }

    /// True when there is at least one check and every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// Every check, in the order made.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

impl fmt::Display for Verdict {
    /// One line per check: `ok   name: actual` or `FAIL name: expected E, actual A`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            if c.passed {
                writeln!(f, "ok   {}: {}", c.name, c.actual)?;
            } else {
                writeln!(
                    f,
                    "FAIL {}: expected {}, actual {}",
                    c.name, c.expected, c.actual
                )?;
            }
        }
        if self.checks.is_empty() {
            writeln!(f, "FAIL no checks were made")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_verdict_fails_closed() {
        let v = Verdict::default();
        assert!(!v.passed());
        assert_eq!(v.to_string(), "FAIL no checks were made\n");
    }

    #[test]
    fn one_failure_fails_the_verdict_and_is_named() {
        let mut v = Verdict::default();
        v.check("measurement", "aa", "aa");
        v.record("signature", false, "valid", "invalid");
        assert!(!v.passed());
        let names: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["signature"]);
        assert_eq!(
            v.to_string(),
            "ok   measurement: aa\nFAIL signature: expected valid, actual invalid\n"
        );
        let mut outer = Verdict::default();
        outer.extend_prefixed("snp", v);
        assert_eq!(outer.checks()[1].name, "snp.signature");
    }
}
