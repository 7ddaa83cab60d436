//! `record.json` (and any JSON): differences by JSON path, e.g. `$.rootfs.verity.root_hash`.

use serde_json::Value;

use super::Difference;

/// One JSON difference: the path and each side's value (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonDifference {
    /// JSONPath-style location, `$` for the document.
    pub path: String,
    /// The left value.
    pub a: Option<Value>,
    /// The right value.
    pub b: Option<Value>,
}

/// Compares two JSON documents, returning the differing leaves (or subtrees present on one
/// side only) in document order.
pub fn json_diff(a: &Value, b: &Value) -> Vec<JsonDifference> {
    let mut out = Vec::new();
    walk("$", a, b, &mut out);
    out
}

/// Two differing values for a message: compact JSON; when both are long strings, a window
/// starting a little before the first differing character.
pub fn show_pair(a: Option<&Value>, b: Option<&Value>) -> (String, String) {
    if let (Some(Value::String(x)), Some(Value::String(y))) = (a, b) {
        let (cx, cy): (Vec<char>, Vec<char>) = (x.chars().collect(), y.chars().collect());
        if cx.len().max(cy.len()) > 100 {
            let i = cx
                .iter()
                .zip(&cy)
                .position(|(p, q)| p != q)
                .unwrap_or(cx.len().min(cy.len()));
            let start = i.saturating_sub(16);
            let window = |c: &[char]| {
                let w: String = c.iter().skip(start).take(64).collect();
                format!("(char {start}) …{}…", Value::String(w))
            };
            return (window(&cx), window(&cy));
        }
    }
    (show(a), show(b))
}

/// A value for a message: compact JSON, long values shortened.
pub fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 100 {
                format!("{}…", s.chars().take(100).collect::<String>())
            } else {
                s
            }
        }
    }
}

pub(crate) fn diff_bytes(name: &str, a: &[u8], b: &[u8]) -> Vec<Difference> {
    let (Ok(va), Ok(vb)) = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) else {
        return Vec::new();
    };
    json_diff(&va, &vb)
        .into_iter()
        .map(|d| {
            let (a, b) = show_pair(d.a.as_ref(), d.b.as_ref());
            Difference::new(name, d.path, "value").values(a, b)
        })
        .collect()
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<JsonDifference>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (k, va) in ma {
                let p = key_path(path, k);
                match mb.get(k) {
                    Some(vb) => walk(&p, va, vb, out),
                    None => out.push(JsonDifference {
                        path: p,
                        a: Some(va.clone()),
                        b: None,
                    }),
                }
            }
            for (k, vb) in mb.iter().filter(|(k, _)| !ma.contains_key(*k)) {
                out.push(JsonDifference {
                    path: key_path(path, k),
                    a: None,
                    b: Some(vb.clone()),
                });
            }
        }
        (Value::Array(xa), Value::Array(xb)) => {
            for i in 0..xa.len().max(xb.len()) {
                let p = format!("{path}[{i}]");
                match (xa.get(i), xb.get(i)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (va, vb) => out.push(JsonDifference {
                        path: p,
                        a: va.cloned(),
                        b: vb.cloned(),
                    }),
                }
            }
        }
        _ if a != b => out.push(JsonDifference {
            path: path.to_owned(),
            a: Some(a.clone()),
            b: Some(b.clone()),
        }),
        _ => {}
    }
}

fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", Value::String(key.to_owned()))
    }
}
