//! Registry credentials, found where container tools keep them, never on the command line.
//!
//! Files are searched in order, and the first holding an entry for the registry wins:
//! `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` (podman, skopeo, buildah),
//! `~/.docker/config.json`. An entry is `auths.<key>.auth`, base64 of `user:password`; a key
//! matches when it is the registry (`HOST[:PORT]`, an `https://` prefix and a path are
//! ignored) or, more specifically, `HOST[:PORT]/NAMESPACE` a prefix of the repository.
//! Credential helpers (`credHelpers`, `credsStore`) are not run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

use super::reference::ImageRef;

/// Where to look (the environment, read by `plan.rs`).
#[derive(Debug, Clone, Default)]
pub struct AuthSources {
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl AuthSources {
    /// The candidate files, in search order.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(f) = &self.registry_auth_file {
            v.push(f.clone());
        }
        if let Some(d) = &self.xdg_runtime_dir {
            v.push(d.join("containers/auth.json"));
        }
        if let Some(h) = &self.home {
            v.push(h.join(".docker/config.json"));
        }
        v
    }
}

/// Credentials for one registry.
#[derive(Clone)]
pub enum Credentials {
    /// No file had an entry: requests go unauthenticated.
    Anonymous {
        /// The files searched.
        searched: Vec<PathBuf>,
    },
    /// HTTP basic credentials (exchanged for a bearer token where the registry asks).
    Basic {
        /// The user name.
        username: String,
        /// The password (never printed).
        password: String,
        /// The file they came from.
        from: PathBuf,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Credentials {
    /// A description for error messages (user and file; never the password).
    pub fn describe(&self) -> String {
        match self {
            Credentials::Anonymous { searched } => {
                let files: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
                format!(
                    "no credentials (none found for this registry in: {})",
                    if files.is_empty() {
                        "no file: REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR and HOME are unset".to_owned()
                    } else {
                        files.join(", ")
                    }
                )
            }
            Credentials::Basic { username, from, .. } => {
                format!("user {username:?} from {}", from.display())
            }
        }
    }
}

/// A credentials file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Reading failed.
    #[error("reading the credentials file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON of the expected shape.
    #[error("the credentials file {path} is not an auth.json / config.json: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` value that is not base64 of `user:password`.
    #[error("the credentials file {path}: auths.{key:?}.auth is not base64 of `user:password`; log in again (`podman login`, `skopeo login` or `docker login`)")]
    BadEntry {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        key: String,
    },
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

/// `https://host:port/v1/` → `host:port`; `host/ns` stays `host/ns`.
fn normalise_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    // Docker's legacy keys carry an API path (`/v1`, `/v2`); a namespace never starts so.
    match k.split_once('/') {
        Some((host, rest)) if rest == "v1" || rest == "v2" || rest.starts_with("v1/") => host,
        _ => k,
    }
}

/// How specifically `key` matches `reference` (longer is more specific), or `None`.
fn match_len(key: &str, reference: &ImageRef) -> Option<usize> {
    let key = normalise_key(key);
    if key == reference.registry {
        return Some(key.len());
    }
    let full = format!("{}/{}", reference.registry, reference.repository);
    let ns = key.strip_prefix(&reference.registry)?.strip_prefix('/')?;
    (full == key || reference.repository.starts_with(&format!("{ns}/"))).then_some(key.len())
}

/// Finds the credentials for `reference`'s registry.
pub fn lookup(sources: &AuthSources, reference: &ImageRef) -> Result<Credentials, AuthError> {
    let files = sources.files();
    for path in &files {
        let text = match fs_err::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(AuthError::Io {
                    path: path.clone(),
                    source,
                })
            }
        };
        let file: AuthFile = serde_json::from_slice(&text).map_err(|source| AuthError::Json {
            path: path.clone(),
            source,
        })?;
        let best = file
            .auths
            .iter()
            .filter_map(|(k, e)| Some((match_len(k, reference)?, k, e)))
            .filter(|(_, _, e)| e.auth.is_some())
            .max_by_key(|(len, _, _)| *len);
        let Some((_, key, entry)) = best else {
            continue;
        };
        let bad = || AuthError::BadEntry {
            path: path.clone(),
            key: key.clone(),
        };
        let encoded = entry.auth.as_deref().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(Credentials::Basic {
            username: user.to_owned(),
            password: pass.to_owned(),
            from: path.clone(),
        });
    }
    Ok(Credentials::Anonymous { searched: files })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
        let p = dir.join(name);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(&p, json).unwrap();
        p
    }

    #[test]
    fn search_order_and_matching() {
        let tmp = tempfile::tempdir().unwrap();
        let r: ImageRef = "127.0.0.1:5000/team/app".parse().unwrap();
        // "alice:pw1" and "bob:pw2" in base64 (computed with `printf alice:pw1 | base64`).
        let podman = write(
            tmp.path(),
            "run/containers/auth.json",
            r#"{"auths": {"127.0.0.1:5000": {"auth": "YWxpY2U6cHcx"}}}"#,
        );
        write(
            tmp.path(),
            "home/.docker/config.json",
            r#"{"auths": {"https://127.0.0.1:5000/v1/": {"auth": "Ym9iOnB3Mg=="}}}"#,
        );
        let sources = AuthSources {
            registry_auth_file: Some(tmp.path().join("missing.json")),
            xdg_runtime_dir: Some(tmp.path().join("run")),
            home: Some(tmp.path().join("home")),
        };
        match lookup(&sources, &r).unwrap() {
            Credentials::Basic {
                username,
                password,
                from,
            } => {
                assert_eq!((username.as_str(), password.as_str()), ("alice", "pw1"));
                assert_eq!(from, podman);
            }
            other => panic!("{other:?}"),
        }
        let docker_only = AuthSources {
            xdg_runtime_dir: None,
            ..sources.clone()
        };
        match lookup(&docker_only, &r).unwrap() {
            Credentials::Basic { username, .. } => assert_eq!(username, "bob"),
            other => panic!("{other:?}"),
        }
        let other: ImageRef = "127.0.0.1:6000/team/app".parse().unwrap();
        assert!(matches!(
            lookup(&sources, &other).unwrap(),
            Credentials::Anonymous { .. }
        ));
        let desc = format!("{:?}", lookup(&sources, &r).unwrap());
        assert!(!desc.contains("pw1"), "{desc}");
    }

    #[test]
    fn namespace_keys_are_more_specific() {
        let tmp = tempfile::tempdir().unwrap();
        let f = write(
            tmp.path(),
            "a.json",
            r#"{"auths": {"reg.example": {"auth": "YWxpY2U6cHcx"},
                          "reg.example/team": {"auth": "Ym9iOnB3Mg=="}}}"#,
        );
        let sources = AuthSources {
            registry_auth_file: Some(f),
            ..Default::default()
        };
        let user = |r: &str| match lookup(&sources, &r.parse().unwrap()).unwrap() {
            Credentials::Basic { username, .. } => username,
            other => panic!("{other:?}"),
        };
        assert_eq!(user("reg.example/team/app"), "bob");
        assert_eq!(user("reg.example/teams/app"), "alice");
    }

    #[test]
    fn bad_entry_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let f = write(
            tmp.path(),
            "a.json",
            r#"{"auths": {"reg.example": {"auth": "not base64!"}}}"#,
        );
        let sources = AuthSources {
            registry_auth_file: Some(f),
            ..Default::default()
        };
        let e = lookup(&sources, &"reg.example/x".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("reg.example"), "{e}");
    }
}
