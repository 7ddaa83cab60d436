//! The workload description (`/etc/enclave/workload.json`) and the launch it composes to.
//!
//! The builder writes this file from the OCI image config's `config` object, keeping exactly
//! these fields with their OCI names (all optional):
//!
//! ```json
//! {
//!   "Entrypoint": ["/usr/bin/server"],
//!   "Cmd": ["--port", "8080"],
//!   "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "RUST_LOG=info"],
//!   "WorkingDir": "/srv",
//!   "User": "1000:1000"
//! }
//! ```
//!
//! Unknown fields are refused (a typo must not drop a setting). Composition follows the OCI
//! image spec / Docker: argv is `Entrypoint ++ Cmd` (at least one word needed); `Env` entries
//! are `KEY=VALUE`, a later duplicate key replaces the earlier value in place; `PATH` defaults
//! to [`DEFAULT_PATH`] and `HOME` to the user's passwd home (else `/`); `WorkingDir` defaults
//! to `/`; `User` is resolved by [`crate::user::resolve`]. A program name without `/` is looked
//! up in the workload's `PATH`.

use serde::Deserialize;

use crate::user;

/// `PATH` when the image config sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The workload description, as the builder writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WorkloadConfig {
    /// OCI `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// OCI `Cmd`.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// OCI `Env`, `KEY=VALUE` each.
    #[serde(default)]
    pub env: Vec<String>,
    /// OCI `WorkingDir` (absolute; empty means `/`).
    #[serde(default)]
    pub working_dir: String,
    /// OCI `User` (`uid`, `uid:gid`, `name`, `name:group`; empty means root).
    #[serde(default)]
    pub user: String,
}

/// Everything needed to start the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program to execute (an absolute or relative path, never a bare name).
    pub program: String,
    /// argv, including argv[0] as given in the config.
    pub argv: Vec<String>,
    /// The complete environment, in order.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id (supplementary groups are cleared).
    pub gid: u32,
}

/// Why the workload could not be composed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is not valid JSON of the expected shape.
    #[error("workload description {path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The parser's error (with line and column).
        source: serde_json::Error,
    },
    /// Neither `Entrypoint` nor `Cmd` gives a program.
    #[error("workload description has an empty Entrypoint and Cmd")]
    NoCommand,
    /// A string that contains NUL (cannot be passed to exec).
    #[error("workload {field}[{index}] contains a NUL byte")]
    Nul {
        /// `Entrypoint`, `Cmd`, `Env`, `WorkingDir` or `User`.
        field: &'static str,
        /// Index within the field (0 for scalar fields).
        index: usize,
    },
    /// An `Env` entry without `=` or with an empty key.
    #[error("workload Env[{index}] `{entry}` is not KEY=VALUE")]
    Env {
        /// Index in `Env`.
        index: usize,
        /// The entry.
        entry: String,
    },
    /// `WorkingDir` is not absolute.
    #[error("workload WorkingDir `{dir}` is not an absolute path")]
    WorkingDir {
        /// The value.
        dir: String,
    },
    /// `User` could not be resolved.
    #[error("workload User: {0}")]
    User(#[from] user::Error),
    /// The program name was not found in `PATH`.
    #[error("workload program `{name}` not found in PATH `{path}`")]
    NotFound {
        /// argv\[0\].
        name: String,
        /// The `PATH` searched.
        path: String,
    },
}

/// Parses a workload description; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &str) -> Result<WorkloadConfig, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

/// Composes the launch from the config and the image's passwd/group text.
/// `is_executable` says whether a path names an executable file in the image.
pub fn compose(
    config: &WorkloadConfig,
    passwd: Option<&str>,
    group: Option<&str>,
    is_executable: &dyn Fn(&str) -> bool,
) -> Result<Launch, Error> {
    no_nul("Entrypoint", &config.entrypoint)?;
    no_nul("Cmd", &config.cmd)?;
    no_nul("Env", &config.env)?;
    no_nul("WorkingDir", std::slice::from_ref(&config.working_dir))?;
    no_nul("User", std::slice::from_ref(&config.user))?;

    let argv: Vec<String> = config
        .entrypoint
        .iter()
        .chain(&config.cmd)
        .cloned()
        .collect();
    let Some(argv0) = argv.first() else {
        return Err(Error::NoCommand);
    };
    if argv0.is_empty() {
        return Err(Error::NoCommand);
    }

    let ids = user::resolve(&config.user, passwd, group)?;

    let mut env: Vec<(String, String)> = Vec::new();
    for (index, entry) in config.env.iter().enumerate() {
        let Some((k, v)) = entry.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::Env {
                index,
                entry: entry.clone(),
            });
        };
        set_env(&mut env, k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push((
            "HOME".into(),
            ids.home.clone().unwrap_or_else(|| "/".into()),
        ));
    }

    let cwd = if config.working_dir.is_empty() {
        "/".to_owned()
    } else if config.working_dir.starts_with('/') {
        config.working_dir.clone()
    } else {
        return Err(Error::WorkingDir {
            dir: config.working_dir.clone(),
        });
    };

    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    let program = resolve_program(argv0, path_var, is_executable)?;

    Ok(Launch {
        program,
        argv,
        env,
        cwd,
        uid: ids.uid,
        gid: ids.gid,
    })
}

/// Finds `name` in `path` (colon-separated) as `execvp` does: a name containing `/` is used
/// as is; otherwise the first `DIR/name` that `is_executable` accepts (an empty `DIR` is `.`).
pub fn resolve_program(
    name: &str,
    path: &str,
    is_executable: &dyn Fn(&str) -> bool,
) -> Result<String, Error> {
    if name.contains('/') {
        return Ok(name.to_owned());
    }
    path.split(':')
        .map(|dir| {
            if dir.is_empty() {
                format!("./{name}")
            } else {
                format!("{}/{name}", dir.trim_end_matches('/'))
            }
        })
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| Error::NotFound {
            name: name.to_owned(),
            path: path.to_owned(),
        })
}

fn set_env(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    match env.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v.to_owned(),
        None => env.push((k.to_owned(), v.to_owned())),
    }
}

fn no_nul(field: &'static str, values: &[String]) -> Result<(), Error> {
    match values.iter().position(|v| v.contains('\0')) {
        Some(index) => Err(Error::Nul { field, index }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/false\n";

    fn exists(p: &str) -> bool {
        ["/usr/bin/python3", "/bin/sh", "/app/run"].contains(&p)
    }

    #[test]
    fn composes_entrypoint_cmd_env_user() {
        let c = parse(
            br#"{"Entrypoint":["python3","-m"],"Cmd":["http.server"],
                 "Env":["A=1","PATH=/usr/local/bin:/usr/bin","A=2","EMPTY=","EQ=a=b"],
                 "WorkingDir":"/srv","User":"app"}"#,
            "w.json",
        )
        .unwrap();
        let l = compose(&c, Some(PASSWD), None, &exists).unwrap();
        assert_eq!(
            l,
            Launch {
                program: "/usr/bin/python3".into(),
                argv: vec!["python3".into(), "-m".into(), "http.server".into()],
                env: vec![
                    ("A".into(), "2".into()),
                    ("PATH".into(), "/usr/local/bin:/usr/bin".into()),
                    ("EMPTY".into(), "".into()),
                    ("EQ".into(), "a=b".into()),
                    ("HOME".into(), "/home/app".into()),
                ],
                cwd: "/srv".into(),
                uid: 1000,
                gid: 1000,
            }
        );
    }

    #[test]
    fn defaults() {
        let c = parse(br#"{"Cmd":["/app/run"]}"#, "w.json").unwrap();
        let l = compose(&c, None, None, &exists).unwrap();
        assert_eq!(l.program, "/app/run");
        assert_eq!(
            l.env,
            [
                ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
                ("HOME".to_owned(), "/".to_owned())
            ]
        );
        assert_eq!((l.cwd.as_str(), l.uid, l.gid), ("/", 0, 0));
        // The empty object is valid JSON but names no program.
        let c = parse(b"{}", "w.json").unwrap();
        assert!(matches!(
            compose(&c, None, None, &exists),
            Err(Error::NoCommand)
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let msg = |json: &[u8]| match parse(json, "/etc/enclave/workload.json") {
            Err(e) => e.to_string(),
            Ok(c) => compose(&c, None, None, &exists).unwrap_err().to_string(),
        };
        assert_eq!(
            msg(br#"{"Cmd":["/bin/sh"],"Env":["NOEQUALS"]}"#),
            "workload Env[0] `NOEQUALS` is not KEY=VALUE"
        );
        assert_eq!(
            msg(br#"{"Cmd":["/bin/sh"],"Env":["=x"]}"#),
            "workload Env[0] `=x` is not KEY=VALUE"
        );
        assert_eq!(
            msg(br#"{"Cmd":["/bin/sh"],"WorkingDir":"srv"}"#),
            "workload WorkingDir `srv` is not an absolute path"
        );
        assert_eq!(
            msg(br#"{"Cmd":["sh","a\u0000b"]}"#),
            "workload Cmd[1] contains a NUL byte"
        );
        assert_eq!(
            msg(br#"{"Cmd":["nope"]}"#),
            format!("workload program `nope` not found in PATH `{DEFAULT_PATH}`")
        );
        assert_eq!(
            msg(br#"{"Cmd":["/bin/sh"],"User":"ghost"}"#),
            "workload User: user `ghost` is not in /etc/passwd"
        );
        assert!(msg(br#"{"Cmd":["/bin/sh"],"Labels":{}}"#).starts_with(
            "workload description /etc/enclave/workload.json: unknown field `Labels`"
        ));
        assert!(
            msg(b"{\"Cmd\":").starts_with("workload description /etc/enclave/workload.json: EOF")
        );
    }

    #[test]
    fn path_lookup_is_in_order_and_handles_empty_dirs() {
        let ok = |p: &str| p == "./tool" || p == "/b/tool";
        assert_eq!(
            resolve_program("tool", "/a:/b/:/c", &ok).unwrap(),
            "/b/tool"
        );
        assert_eq!(resolve_program("tool", "/a::/b", &ok).unwrap(), "./tool");
        assert_eq!(resolve_program("./x", "", &ok).unwrap(), "./x");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(c) = parse(&bytes, "x") {
                let _ = compose(&c, None, None, &|_| true);
            }
        }
    }
}
