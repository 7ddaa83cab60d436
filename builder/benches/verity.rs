//! `verity::build_at` against `veritysetup format` on the same file, in the same run.
//!
//! `cargo bench -p enclave-builder --bench verity [-- SIZE_MIB]` (default 512 MiB). The data
//! file is written to a temporary directory and read once to warm the page cache; each tool
//! then runs `ROUNDS` times, alternating, and the fastest run of each is compared. Both must
//! produce the same root hash. Not part of `cargo test`.
#![allow(clippy::print_stdout)] // A benchmark's report is its output.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use builder::verity::{self, Params};

const ROUNDS: usize = 3;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and a test run must not spend a minute writing and hashing 512 MiB.
    if !std::env::args().any(|a| a == "--bench") {
        println!("verity benchmark: run it with `cargo bench --bench verity`");
        return;
    }
    let mib: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("size in MiB"))
        .unwrap_or(512);
    let size = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("data");
    let hash_path = dir.path().join("hash");
    write_data(&data_path, size);
    // Warm the page cache so both sides read from memory.
    std::io::copy(
        &mut fs_err::File::open(&data_path).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();

    let salt = vec![0x5a; 32];
    let params = Params::new(salt.clone(), [0x11; 16]);
    let (mut ours, mut theirs) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let file = fs_err::File::open(&data_path).unwrap();
        let tree = verity::build_at(&file, size, &params).unwrap();
        ours = ours.min(start.elapsed());

        let _ = fs_err::remove_file(&hash_path);
        let start = Instant::now();
        let out = Command::new("veritysetup")
            .arg("format")
            .arg(&data_path)
            .arg(&hash_path)
            .arg(format!("--salt={}", hex::encode(&salt)))
            .arg("--uuid=11111111-1111-1111-1111-111111111111")
            .output()
            .unwrap();
        theirs = theirs.min(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&tree.root.root_hash_hex()),
            "root hashes differ:\n{stdout}"
        );
        let mut area = Vec::new();
        fs_err::File::open(&hash_path)
            .unwrap()
            .read_to_end(&mut area)
            .unwrap();
        assert!(area == tree.area, "hash areas differ");
    }
    let threads = rayon::current_num_threads();
    println!(
        "verity {mib} MiB: ours {:.3} s, veritysetup {:.3} s, ratio ours/theirs {:.2} \
         (best of {ROUNDS}, {threads} rayon threads)",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

/// Pseudo-random bytes (xorshift64*), written in 8 MiB pieces.
fn write_data(path: &std::path::Path, size: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(fs_err::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            word.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}
