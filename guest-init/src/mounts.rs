//! The file systems the init mounts before anything else, as data.
//!
//! The root image must contain the mount points `/proc`, `/sys`, `/dev`, `/run` and `/tmp`
//! (the root is a read-only EROFS, so the init cannot create them); `/dev/pts` and `/dev/shm`
//! are created inside the devtmpfs; `/sys/kernel/config` is made by the kernel inside sysfs.

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
    /// A missing mount point (a kernel built without this file system) skips the mount.
    pub optional: bool,
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
        optional: false,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: SAFE,
        data: "",
        create_target: false,
        may_exist: false,
        optional: false,
    },
    // configfs: the kernel's TSM report interface (`tsm/report`, SEV-SNP and TDX evidence)
    // lives in it. The guest kernel builds it in (kernel-config/enclave.config).
    MountSpec {
        source: "configfs",
        target: "/sys/kernel/config",
        fstype: "configfs",
        flags: SAFE,
        data: "",
        create_target: false,
        may_exist: true,
        optional: true,
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
        optional: false,
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
        optional: false,
    },
    MountSpec {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: SAFE,
        data: "mode=1777",
        create_target: true,
        may_exist: false,
        optional: false,
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
        optional: false,
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
        optional: false,
    },
];

/// The mount points the root image must provide (those inside sysfs come with the kernel).
pub fn required_mount_points() -> impl Iterator<Item = &'static str> {
    BASE_MOUNTS
        .iter()
        .filter(|m| !m.create_target && !m.target.starts_with("/sys/"))
        .map(|m| m.target)
}

/// The kernel's attestation interfaces the workload is given: its user becomes the owner, as
/// only root may use them otherwise. Each that exists when the workload starts is handed over;
/// none is required (the kernel offers what the platform has).
pub const ATTESTATION: &[Handover] = &[
    // The TPM with the kernel's resource manager (a vTPM: QEMU + swtpm, cloud vTPMs).
    Handover {
        path: "/dev/tpmrm0",
        create_in: None,
        readable: None,
    },
    // One configfs TSM report entry (SEV-SNP, TDX): making entries needs root, so the init
    // makes one for the workload and hands it over with the attributes in it. The interface
    // exists in any kernel built with it; without a TEE, making an entry fails (`ENXIO`, as
    // Linux 6.12 does) or its `provider` cannot be read, and nothing is handed over.
    Handover {
        path: "/sys/kernel/config/tsm/report/workload",
        create_in: Some("/sys/kernel/config/tsm/report"),
        readable: Some("provider"),
    },
];

/// A device or configfs entry handed to the workload's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover {
    /// The path; a directory's direct entries are handed over with it.
    pub path: &'static str,
    /// Make `path` (a directory) first, when this directory exists.
    pub create_in: Option<&'static str>,
    /// A file in `path` that must be readable, else nothing is handed (and a directory made
    /// by the init is removed).
    pub readable: Option<&'static str>,
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

    #[test]
    fn configfs_is_mounted_after_sysfs_and_its_report_entry_lies_inside() {
        let sys = BASE_MOUNTS.iter().position(|m| m.target == "/sys").unwrap();
        let cfg = BASE_MOUNTS
            .iter()
            .position(|m| m.fstype == "configfs")
            .unwrap();
        assert!(sys < cfg);
        for h in ATTESTATION {
            if let Some(dir) = h.create_in {
                assert_eq!(h.path.rsplit_once('/').unwrap().0, dir);
                assert!(dir.starts_with(BASE_MOUNTS[cfg].target));
            }
        }
    }
}
