//! Kernel `.config` text: parsing, the fragment check and the "unchanged by olddefconfig" diff.
//!
//! Pure functions over text. A kconfig file has three kinds of lines this module reads:
//! `CONFIG_X=value`, `# CONFIG_X is not set` (value `n`) and everything else (comments, blank
//! lines), which is ignored. A symbol that does not appear at all also means `n`: kconfig
//! omits symbols whose dependencies are unmet.

use std::collections::BTreeMap;
use std::fmt;

/// The value kconfig writes for a disabled option.
pub const NOT_SET: &str = "n";

/// One requested option and what the resolved config says instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// 1-based line number in the fragment.
    pub line: usize,
    /// The option name, with its `CONFIG_` prefix.
    pub option: String,
    /// The value the fragment asks for (`n` for "is not set").
    pub requested: String,
    /// The value in the resolved config; `None` if the option does not appear.
    pub resolved: Option<String>,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} requested {}, resolved to {}",
            self.line,
            self.option,
            self.requested,
            self.resolved
                .as_deref()
                .unwrap_or("nothing (dependencies unmet)")
        )
    }
}

/// One option whose value differs between two configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDiff {
    /// The option name, with its `CONFIG_` prefix.
    pub option: String,
    /// The value in the expected (checked-in) config; `None` if absent.
    pub expected: Option<String>,
    /// The value in the actual config; `None` if absent.
    pub actual: Option<String>,
}

impl fmt::Display for OptionDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
        write!(
            f,
            "{}: {} -> {}",
            self.option,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// One option line: `(name, value)`; `None` for lines that set nothing.
fn parse_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("# ") {
        let name = rest.strip_suffix(" is not set")?;
        return is_symbol(name).then_some((name, NOT_SET));
    }
    let (name, value) = line.split_once('=')?;
    is_symbol(name).then_some((name, value))
}

fn is_symbol(name: &str) -> bool {
    name.strip_prefix("CONFIG_")
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// The options a config (or fragment) sets, by name. A later line for the same option wins,
/// as in kconfig.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(parse_line)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Checks that every option `fragment` sets has exactly that value in the resolved `config`
/// (`n` is satisfied by an absent option). Returns every option that did not resolve.
pub fn check_fragment(fragment: &str, config: &str) -> Result<(), Vec<Unresolved>> {
    let resolved = parse(config);
    let mut bad = Vec::new();
    for (i, line) in fragment.lines().enumerate() {
        let Some((name, requested)) = parse_line(line) else {
            continue;
        };
        let got = resolved.get(name);
        let ok = match got {
            Some(v) => v == requested,
            None => requested == NOT_SET,
        };
        if !ok {
            bad.push(Unresolved {
                line: i.saturating_add(1),
                option: name.to_owned(),
                requested: requested.to_owned(),
                resolved: got.cloned(),
            });
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

/// The options whose values differ between `expected` and `actual`, in name order. An absent
/// option and `is not set` are treated as different, because kconfig writes them differently
/// and the checked-in config must be byte-identical after `make olddefconfig`.
pub fn diff(expected: &str, actual: &str) -> Vec<OptionDiff> {
    let e = parse(expected);
    let a = parse(actual);
    let mut names: Vec<&String> = e.keys().chain(a.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let (ev, av) = (e.get(n), a.get(n));
            (ev != av).then(|| OptionDiff {
                option: n.clone(),
                expected: ev.cloned(),
                actual: av.cloned(),
            })
        })
        .collect()
}
