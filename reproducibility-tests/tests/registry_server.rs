//! Test servers on 127.0.0.1: Debian's CNCF distribution registry (`/usr/bin/docker-registry`)
//! with a temporary storage directory, and a TCP proxy that can corrupt or cut traffic.
//! Both stop when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A running registry; killed on drop.
pub(crate) struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry; with `user`, only that user (bcrypt htpasswd) may read or write.
    pub(crate) fn start(user: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::util::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((u, p)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd is not runnable: install apache2-utils");
            assert!(out.status.success());
            fs_err::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        fs_err::write(&cfg, config).unwrap();
        let log = dir.path().join("registry.log");
        let open = || {
            fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap()
                .into_parts()
                .0
        };
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::from(open()))
            .stderr(Stdio::from(open()))
            .spawn()
            .expect("/usr/bin/docker-registry is not runnable: install docker-registry");
        let reg = TestRegistry {
            child,
            addr,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(&reg.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {}:\n{}",
                reg.addr,
                reg.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// The registry's log (access log lines included).
    pub(crate) fn log(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    /// Digests of the blob uploads committed in `repo` so far (each final
    /// `PUT /v2/REPO/blobs/uploads/...?digest=...` the registry answered 201).
    pub(crate) fn committed_uploads(&self, repo: &str) -> Vec<String> {
        let prefix = format!("\"PUT /v2/{repo}/blobs/uploads/");
        self.log()
            .lines()
            .filter(|l| l.contains(&prefix) && l.contains("\" 201 "))
            .filter_map(|l| {
                let i = l.find("digest=sha256%3A")? + "digest=sha256%3A".len();
                Some(format!("sha256:{}", l.get(i..i + 64)?))
            })
            .collect()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does to the traffic.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Flip the last byte of the first occurrence of this marker in a response.
    FlipInResponse(Vec<u8>),
    /// Cut every connection once this many request bytes have passed (client to registry).
    CutAfterRequestBytes(u64),
}

/// A loopback TCP proxy in front of a registry; stops on drop.
pub(crate) struct Proxy {
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    stop: Arc<AtomicBool>,
    /// Whether the fault happened.
    pub(crate) fired: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy to `upstream`.
    pub(crate) fn start(upstream: &str, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (s, n, f) = (stop.clone(), sent.clone(), fired.clone());
        let accept = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        spawn_pipes(client, server, fault.clone(), n.clone(), f.clone());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            addr,
            stop,
            fired,
            accept: Some(accept),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn spawn_pipes(
    client: TcpStream,
    server: TcpStream,
    fault: Fault,
    sent: Arc<AtomicU64>,
    fired: Arc<AtomicBool>,
) {
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (f2, fired2) = (fault.clone(), fired.clone());
    // Client to registry: count, and cut when told.
    thread::spawn(move || {
        let (mut from, mut to) = (client, server);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if let Fault::CutAfterRequestBytes(limit) = f2 {
                if total > limit {
                    fired2.store(true, Ordering::SeqCst);
                    break;
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
    // Registry to client: flip one byte of the marker, once.
    thread::spawn(move || {
        let (mut from, mut to) = (s2, c2);
        let mut buf = vec![0u8; 64 * 1024];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            if let Fault::FlipInResponse(marker) = &fault {
                if !fired.load(Ordering::SeqCst) {
                    let mut window = carry.clone();
                    window.extend_from_slice(chunk);
                    if let Some(pos) = window.windows(marker.len()).position(|w| w == marker) {
                        // The marker's last byte is in this chunk (it completed here).
                        let last = pos + marker.len() - 1 - carry.len();
                        chunk[last] ^= 0x01;
                        fired.store(true, Ordering::SeqCst);
                    }
                    let keep = marker.len().saturating_sub(1).min(window.len());
                    carry = window[window.len() - keep..].to_vec();
                }
            }
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// Writes an auth.json with `user:password` for `registry` (as `podman login` does).
pub(crate) fn auth_file(path: &Path, registry: &str, user: &str, password: &str) {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{user}:{password}").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let b64 = String::from_utf8(out.stdout).unwrap();
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(
        path,
        format!(
            r#"{{"auths": {{"{registry}": {{"auth": "{}"}}}}}}"#,
            b64.trim()
        ),
    )
    .unwrap();
}
