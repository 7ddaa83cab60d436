//! The file systems the init mounts before anything else, as data.
//!
//! The root image must contain the mount points `/proc`, `/sys`, `/dev`, `/run` and `/tmp`
//! (the root is a read-only EROFS, so the init cannot create them); `/dev/pts` and `/dev/shm`
//! are created inside the devtmpfs.

/// Mount flags the init uses (a subset of `MS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `MS_NOSUID`.
    pub nosuid: bool,
    /// `MS_NODEV`.
    pub nodev: bool,
    /// `MS_NOEXEC`.
    pub noexec: bool,
    /// `MS_RDONLY`.
    pub read_only: bool,
}

/// One mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountSpec {
    /// The source (`proc`, `sysfs`, ...; only a label for pseudo file systems).
    pub source: &'static str,
    /// The mount point.
    pub target: &'static str,
    /// The file system type.
    pub fstype: &'static str,
    /// Flags.
    pub flags: Flags,
    /// File-system specific options (`mode=...`).
    pub data: &'static str,
    /// Create the mount point (mode 0755) first; only for points inside an earlier tmpfs/devtmpfs.
    pub create_target: bool,
    /// An `EBUSY` (already mounted, e.g. by `CONFIG_DEVTMPFS_MOUNT`) is not an error.
    pub may_exist: bool,
}

const SAFE: Flags = Flags {
    nosuid: true,
    nodev: true,
    noexec: true,
    read_only: false,
};

/// The base mounts, in order: `/proc` first (the command line is read from it).
pub const BASE_MOUNTS: &[MountSpec] = &[
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: SAFE,
        data: "",
        create_target: false,
        may_exist: false,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: SAFE,
        data: "",
        create_target: false,
        may_exist: false,
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: Flags {
            nosuid: true,
            nodev: false,
            noexec: true,
            read_only: false,
        },
        data: "mode=0755",
        create_target: false,
        may_exist: true,
    },
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: Flags {
            nosuid: true,
            nodev: false,
            noexec: true,
            read_only: false,
        },
        data: "mode=0620,ptmxmode=0666",
        create_target: true,
        may_exist: false,
    },
    MountSpec {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: SAFE,
        data: "mode=1777",
        create_target: true,
        may_exist: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: Flags {
            nosuid: true,
            nodev: true,
            noexec: false,
            read_only: false,
        },
        data: "mode=0755",
        create_target: false,
        may_exist: false,
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: Flags {
            nosuid: true,
            nodev: true,
            noexec: false,
            read_only: false,
        },
        data: "mode=1777",
        create_target: false,
        may_exist: false,
    },
];

/// The mount points the root image must provide.
pub fn required_mount_points() -> impl Iterator<Item = &'static str> {
    BASE_MOUNTS
        .iter()
        .filter(|m| !m.create_target)
        .map(|m| m.target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_first_and_parents_before_children() {
        assert_eq!(BASE_MOUNTS[0].target, "/proc");
        for (i, m) in BASE_MOUNTS.iter().enumerate() {
            if m.create_target {
                let parent = m.target.rsplit_once('/').unwrap().0;
                assert!(
                    BASE_MOUNTS[..i].iter().any(|p| p.target == parent),
                    "{} is created before its parent is mounted",
                    m.target
                );
            }
        }
        assert_eq!(
            required_mount_points().collect::<Vec<_>>(),
            ["/proc", "/sys", "/dev", "/run", "/tmp"]
        );
    }
}
