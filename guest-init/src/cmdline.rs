//! The init's own parameters on the kernel command line (`/proc/cmdline`).
//!
//! Every parameter of ours starts with `enclave.`; everything else belongs to the kernel and
//! is ignored. An unknown `enclave.*` key, a repeated single-valued key or a malformed value is
//! an error (the init then powers off): a typo must not silently drop, say, a required device.
//!
//! | parameter | meaning | default |
//! | --- | --- | --- |
//! | `enclave.workload=PATH` | the workload description (see [`crate::workload`]) | `/etc/enclave/workload.json` |
//! | `enclave.net=ADDR/PREFIX[,GATEWAY]` | static IPv4 address on [`Params::netif`], optional default route | loopback only |
//! | `enclave.netif=NAME` | the interface `enclave.net` configures | `eth0` |
//! | `enclave.require=DEV[,DEV...]` | device nodes that must appear (e.g. `/dev/mapper/data` set up by `dm-mod.create`) | none |
//! | `enclave.wait=SECONDS` | how long to wait for required devices | `10` |
//! | `enclave.mount=SRC,TARGET,FSTYPE[,ro]` | a data disk to mount (repeatable) | none |
//!
//! Quoting follows the kernel: double quotes group words and are removed, and parsing stops at
//! `--` (what follows is for init's argv).

use std::net::Ipv4Addr;

/// The default location of the workload description inside the image.
pub const DEFAULT_WORKLOAD: &str = "/etc/enclave/workload.json";
/// The default interface `enclave.net` configures.
pub const DEFAULT_NETIF: &str = "eth0";
/// The default wait for required devices, in seconds.
pub const DEFAULT_WAIT_SECS: u32 = 10;
/// The longest wait accepted, in seconds.
pub const MAX_WAIT_SECS: u32 = 600;

/// The init's parameters, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Path of the workload description.
    pub workload: String,
    /// Static IPv4 configuration, if any.
    pub net: Option<NetConfig>,
    /// The interface [`Params::net`] applies to.
    pub netif: String,
    /// Device nodes that must exist before the workload starts.
    pub require: Vec<String>,
    /// Seconds to wait for [`Params::require`].
    pub wait_secs: u32,
    /// Data disks to mount, in command-line order.
    pub mounts: Vec<DataMount>,
}

/// A static IPv4 address with an optional default gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// The interface address.
    pub address: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
}

/// A data disk mount from `enclave.mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMount {
    /// The device (absolute path).
    pub source: String,
    /// The mount point (absolute path; must exist in the image).
    pub target: String,
    /// The file system type (`erofs`, `ext4`, ...).
    pub fstype: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An `enclave.*` key this init does not know.
    #[error("unknown parameter `{name}`")]
    Unknown {
        /// The full key.
        name: String,
    },
    /// A single-valued parameter given twice.
    #[error("parameter `{name}` given more than once")]
    Duplicate {
        /// The full key.
        name: String,
    },
    /// A parameter without `=VALUE`, or with an empty value.
    #[error("parameter `{name}` needs a value")]
    MissingValue {
        /// The full key.
        name: String,
    },
    /// A value that does not parse.
    #[error("parameter `{name}`: invalid value `{value}`: {reason}")]
    Invalid {
        /// The full key.
        name: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Default for Params {
    fn default() -> Self {
        Params {
            workload: DEFAULT_WORKLOAD.to_owned(),
            net: None,
            netif: DEFAULT_NETIF.to_owned(),
            require: Vec::new(),
            wait_secs: DEFAULT_WAIT_SECS,
            mounts: Vec::new(),
        }
    }
}

/// Parses the contents of `/proc/cmdline`.
pub fn parse(cmdline: &str) -> Result<Params, Error> {
    let mut params = Params::default();
    let mut seen: Vec<String> = Vec::new();
    for word in split(cmdline) {
        if word == "--" {
            break;
        }
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        let Some(short) = key.strip_prefix("enclave.") else {
            continue;
        };
        let name = key.to_owned();
        let value = match value {
            Some(v) if !v.is_empty() => v,
            _ => {
                return Err(match short {
                    "workload" | "net" | "netif" | "require" | "wait" | "mount" => {
                        Error::MissingValue { name }
                    }
                    _ => Error::Unknown { name },
                })
            }
        };
        if short != "mount" {
            if seen.iter().any(|s| s == short) {
                return Err(Error::Duplicate { name });
            }
            seen.push(short.to_owned());
        }
        let invalid = |reason: &'static str| Error::Invalid {
            name: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        match short {
            "workload" => params.workload = abs_path(value).map_err(invalid)?,
            "netif" => params.netif = ifname(value).map_err(invalid)?,
            "net" => params.net = Some(net_config(value).map_err(invalid)?),
            "require" => {
                params.require = value
                    .split(',')
                    .map(abs_path)
                    .collect::<Result<_, _>>()
                    .map_err(invalid)?
            }
            "wait" => {
                let secs: u32 = value
                    .parse()
                    .map_err(|_| invalid("not a whole number of seconds"))?;
                if secs > MAX_WAIT_SECS {
                    return Err(invalid("longer than 600 seconds"));
                }
                params.wait_secs = secs;
            }
            "mount" => params.mounts.push(data_mount(value).map_err(invalid)?),
            _ => return Err(Error::Unknown { name }),
        }
    }
    Ok(params)
}

/// Splits a command line into words the way the kernel does: whitespace separates words
/// except inside double quotes, and the quote characters themselves are dropped. An
/// unterminated quote runs to the end of the line (as in the kernel).
pub fn split(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in cmdline.chars() {
        if c == '"' {
            quoted = !quoted;
            in_word = true;
        } else if c.is_whitespace() && !quoted {
            if in_word {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
        } else {
            cur.push(c);
            in_word = true;
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

fn abs_path(v: &str) -> Result<String, &'static str> {
    if !v.starts_with('/') {
        return Err("not an absolute path");
    }
    if v.contains('\0') {
        return Err("contains NUL");
    }
    if v.split('/').any(|c| c == "..") {
        return Err("contains `..`");
    }
    Ok(v.to_owned())
}

fn ifname(v: &str) -> Result<String, &'static str> {
    // IFNAMSIZ is 16 including the NUL.
    if v.len() > 15 {
        return Err("interface names are at most 15 bytes");
    }
    if v.bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err("interface names cannot contain `/`, `:`, NUL or whitespace");
    }
    Ok(v.to_owned())
}

fn net_config(v: &str) -> Result<NetConfig, &'static str> {
    let (cidr, gateway) = match v.split_once(',') {
        Some((c, g)) => (c, Some(g)),
        None => (v, None),
    };
    let (addr, prefix) = cidr
        .split_once('/')
        .ok_or("expected ADDR/PREFIX[,GATEWAY]")?;
    let address: Ipv4Addr = addr.parse().map_err(|_| "address is not IPv4")?;
    let prefix: u8 = prefix.parse().map_err(|_| "prefix is not a number")?;
    if prefix > 32 {
        return Err("prefix is longer than 32");
    }
    let gateway = match gateway {
        Some(g) => Some(g.parse().map_err(|_| "gateway is not IPv4")?),
        None => None,
    };
    Ok(NetConfig {
        address,
        prefix,
        gateway,
    })
}

fn data_mount(v: &str) -> Result<DataMount, &'static str> {
    let parts: Vec<&str> = v.split(',').collect();
    let (source, target, fstype, read_only) = match parts.as_slice() {
        [s, t, f] => (*s, *t, *f, false),
        [s, t, f, "ro"] => (*s, *t, *f, true),
        _ => return Err("expected SRC,TARGET,FSTYPE[,ro]"),
    };
    if fstype.is_empty()
        || !fstype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return Err("file system type must be alphanumeric");
    }
    Ok(DataMount {
        source: abs_path(source)?,
        target: abs_path(target)?,
        fstype: fstype.to_owned(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_nothing_is_ours() {
        let p = parse("console=ttyS0 root=/dev/dm-0 ro dm-mod.create=\"root,,,ro,0 8 verity 1\"\n")
            .unwrap();
        assert_eq!(p, Params::default());
    }

    #[test]
    fn parses_every_parameter() {
        let p = parse(
            "quiet enclave.net=10.0.2.15/24,10.0.2.2 enclave.netif=ens3 \
             enclave.workload=/etc/w.json enclave.require=/dev/mapper/data,/dev/vdb \
             enclave.wait=30 enclave.mount=/dev/mapper/data,/data,erofs,ro \
             enclave.mount=/dev/vdc,/scratch,ext4 -- enclave.bogus",
        )
        .unwrap();
        assert_eq!(
            p.net,
            Some(NetConfig {
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            })
        );
        assert_eq!(p.netif, "ens3");
        assert_eq!(p.workload, "/etc/w.json");
        assert_eq!(p.require, ["/dev/mapper/data", "/dev/vdb"]);
        assert_eq!(p.wait_secs, 30);
        assert_eq!(
            p.mounts,
            [
                DataMount {
                    source: "/dev/mapper/data".into(),
                    target: "/data".into(),
                    fstype: "erofs".into(),
                    read_only: true
                },
                DataMount {
                    source: "/dev/vdc".into(),
                    target: "/scratch".into(),
                    fstype: "ext4".into(),
                    read_only: false
                }
            ]
        );
    }

    #[test]
    fn net_without_gateway() {
        let p = parse("enclave.net=192.168.1.2/32").unwrap();
        assert_eq!(p.net.unwrap().gateway, None);
        assert_eq!(p.net.unwrap().prefix, 32);
    }

    #[test]
    fn quotes_group_words_like_the_kernel() {
        assert_eq!(split(r#"a "b c" d="e f"g"#), ["a", "b c", "d=e fg"]);
        assert_eq!(split("  "), Vec::<String>::new());
        assert_eq!(split(r#""unterminated x"#), ["unterminated x"]);
        assert_eq!(split(r#""""#), [""]);
    }

    #[test]
    fn refuses_bad_input_naming_the_parameter() {
        let cases = [
            ("enclave.foo=1", "unknown parameter `enclave.foo`"),
            ("enclave.net", "parameter `enclave.net` needs a value"),
            ("enclave.wait=", "parameter `enclave.wait` needs a value"),
            (
                "enclave.wait=1 enclave.wait=2",
                "parameter `enclave.wait` given more than once",
            ),
            (
                "enclave.net=10.0.2.15/33",
                "parameter `enclave.net`: invalid value `10.0.2.15/33`: prefix is longer than 32",
            ),
            (
                "enclave.net=10.0.2.15",
                "parameter `enclave.net`: invalid value `10.0.2.15`: expected ADDR/PREFIX[,GATEWAY]",
            ),
            (
                "enclave.net=::1/64",
                "parameter `enclave.net`: invalid value `::1/64`: address is not IPv4",
            ),
            (
                "enclave.workload=etc/w.json",
                "parameter `enclave.workload`: invalid value `etc/w.json`: not an absolute path",
            ),
            (
                "enclave.require=/dev/../etc",
                "parameter `enclave.require`: invalid value `/dev/../etc`: contains `..`",
            ),
            (
                "enclave.wait=601",
                "parameter `enclave.wait`: invalid value `601`: longer than 600 seconds",
            ),
            (
                "enclave.mount=/dev/vdb,/data",
                "parameter `enclave.mount`: invalid value `/dev/vdb,/data`: expected SRC,TARGET,FSTYPE[,ro]",
            ),
            (
                "enclave.netif=averyveryverylongname",
                "parameter `enclave.netif`: invalid value `averyveryverylongname`: interface names are at most 15 bytes",
            ),
        ];
        for (input, want) in cases {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.starts_with(want), "{input}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_our_keys(
            words in proptest::collection::vec(
                ("enclave\\.(net|netif|wait|mount|require|workload|x)", "[=,/.:0-9a-z\"]{0,24}"),
                0..6,
            )
        ) {
            let line: Vec<String> = words.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = parse(&line.join(" "));
        }
    }
}
