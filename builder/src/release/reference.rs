//! `ImageRef`: a registry reference, parsed once (`HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`).
//!
//! The registry host is always explicit: a reference without one is refused rather than
//! completed with some default registry, so a release never goes anywhere unnamed.

use std::fmt;
use std::str::FromStr;

use super::layout::{LayoutError, OciDigest};

/// A reference that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The reference does not parse.
    #[error("{reference:?} is not a registry reference: {why}; write HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX], e.g. 127.0.0.1:5000/enclave/demo:0.1.0")]
    Syntax {
        /// The reference.
        reference: String,
        /// Why.
        why: String,
    },
    /// The digest part is malformed.
    #[error("in reference {reference:?}: {source}")]
    Digest {
        /// The reference.
        reference: String,
        /// The error.
        #[source]
        source: LayoutError,
    },
}

/// A parsed registry reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// The repository path (`enclave/demo`).
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The manifest digest, if any.
    pub digest: Option<OciDigest>,
}

impl ImageRef {
    /// The registry host without the port.
    pub fn host(&self) -> &str {
        if let Some(rest) = self.registry.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        self.registry.split(':').next().unwrap_or(&self.registry)
    }

    /// Whether the registry is on this machine (127.0.0.0/8, `localhost`, `::1`): the only
    /// registries spoken to over plain HTTP without `--insecure-http`.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host == "::1"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The same repository at `digest`.
    pub fn at(&self, digest: OciDigest) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository at `tag`.
    pub fn tagged(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn repository_ok(repo: &str) -> bool {
    // distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
    repo.split('/').all(|part| {
        let b = part.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter()
                .all(|c| alnum(c) || matches!(c, b'.' | b'_' | b'-'))
            && !part.contains("..")
            && !part.contains("___")
            && !part.contains("._")
            && !part.contains("_.")
    })
}

fn tag_ok(tag: &str) -> bool {
    // distribution-spec: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn registry_ok(reg: &str) -> bool {
    let explicit = reg.contains('.') || reg.contains(':') || reg == "localhost";
    explicit
        && reg
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'))
}

impl FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = |why: &str| RefError::Syntax {
            reference: s.to_owned(),
            why: why.to_owned(),
        };
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<OciDigest>().map_err(|source| RefError::Digest {
                    reference: s.to_owned(),
                    source,
                })?),
            ),
            None => (s, None),
        };
        let (registry, path) = name
            .split_once('/')
            .ok_or_else(|| syntax("no registry host (HOST[:PORT]/ is required)"))?;
        if !registry_ok(registry) {
            return Err(syntax(&format!(
                "{registry:?} is not a registry host; the first component must be HOST[:PORT] \
                 (with a `.` or a port, or `localhost`)"
            )));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t)),
            _ => (path, None),
        };
        if !repository_ok(repository) {
            return Err(syntax(&format!(
                "{repository:?} is not a repository name (lowercase letters, digits, `.`, `_`, `-`, `/`)"
            )));
        }
        if let Some(t) = tag {
            if !tag_ok(t) {
                return Err(syntax(&format!("{t:?} is not a tag")));
            }
        }
        Ok(ImageRef {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let r: ImageRef = format!("127.0.0.1:5000/enclave/demo:0.1@{d}")
            .parse()
            .unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "enclave/demo");
        assert_eq!(r.tag.as_deref(), Some("0.1"));
        assert_eq!(r.digest.unwrap().to_string(), d);
        assert!(r.is_loopback());
        assert_eq!(
            r.to_string(),
            format!("127.0.0.1:5000/enclave/demo:0.1@{d}")
        );
        let r: ImageRef = "registry.example:443/x".parse().unwrap();
        assert!(!r.is_loopback());
        assert_eq!(r.tag, None);
        assert!("localhost/x".parse::<ImageRef>().unwrap().is_loopback());
    }

    #[test]
    fn refuses() {
        for bad in [
            "demo",
            "enclave/demo",
            "127.0.0.1:5000/Upper",
            "127.0.0.1:5000/x:bad tag",
            "127.0.0.1:5000/x@sha256:abc",
            "127.0.0.1:5000/",
            "127.0.0.1:5000/a//b",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad} was accepted");
        }
    }
}
