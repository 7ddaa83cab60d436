//! Resolving the OCI `User` field (`uid`, `uid:gid`, `name`, `name:group`) to numeric ids.
//!
//! Names are looked up in the image's `/etc/passwd` and `/etc/group` text (no NSS, no libc):
//! the caller passes the file contents, or `None` when the file does not exist. The rules
//! follow the OCI image spec and Docker: a numeric uid that has no passwd entry gets gid 0;
//! a name that is not found is an error; an explicit group overrides the passwd group.

/// Resolved identity of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory from passwd, if the user has an entry.
    pub home: Option<String>,
}

/// Why a `User` value could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A user name with no entry in `/etc/passwd` (or no such file).
    #[error("user `{name}` is not in /etc/passwd")]
    UnknownUser {
        /// The name.
        name: String,
    },
    /// A group name with no entry in `/etc/group` (or no such file).
    #[error("group `{name}` is not in /etc/group")]
    UnknownGroup {
        /// The name.
        name: String,
    },
    /// An empty user or group part (`:1`, `1:`).
    #[error("user `{spec}` has an empty user or group part")]
    Empty {
        /// The whole `User` value.
        spec: String,
    },
}

/// One parsed `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    /// Login name.
    pub name: &'a str,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: &'a str,
}

/// Resolves `spec` (an empty spec means root, `0:0`).
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<Ids, Error> {
    if spec.is_empty() {
        let home = passwd_entries(passwd.unwrap_or(""))
            .find(|e| e.uid == 0)
            .map(|e| e.home.to_owned());
        return Ok(Ids {
            uid: 0,
            gid: 0,
            home,
        });
    }
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || grp.is_some_and(str::is_empty) {
        return Err(Error::Empty {
            spec: spec.to_owned(),
        });
    }
    let entries = || passwd_entries(passwd.unwrap_or(""));
    let (uid, mut gid, home) = match user.parse::<u32>() {
        Ok(uid) => match entries().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.home.to_owned())),
            None => (uid, 0, None),
        },
        Err(_) => match entries().find(|e| e.name == user) {
            Some(e) => (e.uid, e.gid, Some(e.home.to_owned())),
            None => {
                return Err(Error::UnknownUser {
                    name: user.to_owned(),
                })
            }
        },
    };
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_gid(group.unwrap_or(""), g)
                .ok_or_else(|| Error::UnknownGroup { name: g.to_owned() })?,
        };
    }
    Ok(Ids { uid, gid, home })
}

/// The well-formed entries of a passwd file, in file order; malformed lines are skipped.
pub fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        let _gecos = f.next()?;
        let home = f.next()?;
        (!name.is_empty() && !name.starts_with('#')).then_some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

/// The gid of group `name` in a group file, if present.
pub fn group_gid(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        let _password = f.next()?;
        f.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          broken line\n\
                          app:x:1000:1001:App:/home/app:/sbin/nologin\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1001:\n";

    fn ids(uid: u32, gid: u32, home: Option<&str>) -> Ids {
        Ids {
            uid,
            gid,
            home: home.map(str::to_owned),
        }
    }

    #[test]
    fn resolves_like_docker() {
        let r = |s| resolve(s, Some(PASSWD), Some(GROUP));
        assert_eq!(r(""), Ok(ids(0, 0, Some("/root"))));
        assert_eq!(r("app"), Ok(ids(1000, 1001, Some("/home/app"))));
        assert_eq!(r("1000"), Ok(ids(1000, 1001, Some("/home/app"))));
        assert_eq!(r("4242"), Ok(ids(4242, 0, None)));
        assert_eq!(r("app:staff"), Ok(ids(1000, 50, Some("/home/app"))));
        assert_eq!(r("4242:77"), Ok(ids(4242, 77, None)));
        assert_eq!(r("nobody"), Ok(ids(65534, 65534, Some("/nonexistent"))));
    }

    #[test]
    fn without_files_only_numbers_work() {
        assert_eq!(resolve("7:8", None, None), Ok(ids(7, 8, None)));
        assert_eq!(resolve("", None, None), Ok(ids(0, 0, None)));
        assert_eq!(
            resolve("app", None, None),
            Err(Error::UnknownUser { name: "app".into() })
        );
        assert_eq!(
            resolve("1:wheel", None, None),
            Err(Error::UnknownGroup {
                name: "wheel".into()
            })
        );
    }

    #[test]
    fn refuses_empty_parts() {
        for s in [":1", "1:", ":"] {
            assert!(
                matches!(resolve(s, None, None), Err(Error::Empty { .. })),
                "{s}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(spec in "\\PC{0,20}", passwd in "[a-z0-9:/\n]{0,80}", group in "[a-z0-9:\n]{0,40}") {
            let _ = resolve(&spec, Some(&passwd), Some(&group));
        }
    }
}
