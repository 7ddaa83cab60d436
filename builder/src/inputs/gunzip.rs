//! gzip layers inflated with zlib-rs: members one after another (RFC 1952 §2.2), each with its
//! header, trailer CRC-32 and length checked by the inflater.
//!
//! Why not flate2's `MultiGzDecoder`: cargo gives flate2 one backend for the whole workspace,
//! and the workspace also *writes* gzip with it (the tests' and the demo's generated layers,
//! whose pinned digests depend on those bytes). Changing flate2's backend would change every
//! such pin. Inflating is the gzip layer's bound ([`super::layer`]); on the AMD EPYC (Zen 5)
//! this path is about 0.2 s faster than miniz_oxide on the benchmark's layer
//! (`docs/performance.md`, stop 13), with the same output by construction: inflating has one
//! correct result, and the tests compare it with flate2's and with `gzip -dc`'s.

use std::io::{self, BufRead, Read};

use zlib_rs::{Inflate, InflateFlush, Status};

/// zlib's `windowBits` for "a gzip header, then a deflate stream with a 32 KiB window".
const GZIP_WINDOW_BITS: u8 = 16 + 15;

/// Reads the concatenated gzip members of `input` as one stream. Empty input, bytes after a
/// member that are not another member, a truncated member and a wrong CRC-32 or length are
/// `InvalidData`/`UnexpectedEof` errors.
pub struct Gunzip<R> {
    input: R,
    /// The current member's inflater; `None` between members.
    member: Option<Inflate>,
    /// Whether any member was started: an empty input is not a gzip stream.
    started: bool,
}

impl<R: BufRead> Gunzip<R> {
    /// A reader of `input`'s members, inflated.
    pub fn new(input: R) -> Self {
        Gunzip {
            input,
            member: None,
            started: false,
        }
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.input.fill_buf()?;
            let inflate = match &mut self.member {
                Some(inflate) => inflate,
                None if input.is_empty() && self.started => return Ok(0),
                None if input.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "empty gzip stream: no member",
                    ))
                }
                None => {
                    self.started = true;
                    self.member.insert(Inflate::new(true, GZIP_WINDOW_BITS))
                }
            };
            let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
            let status = inflate
                .decompress(input, out, InflateFlush::NoFlush)
                .map_err(|e| {
                    let text = inflate.error_message().unwrap_or(e.as_str());
                    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {text}"))
                })?;
            // Both totals only grow, by at most the slices' lengths.
            let used = usize::try_from(inflate.total_in() - in_before).unwrap_or(usize::MAX);
            let made = usize::try_from(inflate.total_out() - out_before).unwrap_or(usize::MAX);
            let had = input.len();
            self.input.consume(used.min(had));
            if matches!(status, Status::StreamEnd) {
                self.member = None;
            } else if had == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gzip member cut short: the input ends inside it",
                ));
            } else if used == 0 && made == 0 {
                // zlib's "no progress possible" with input and room: cannot happen, but a
                // loop that cannot advance must not spin.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "gzip: the inflater made no progress",
                ));
            }
            if made > 0 {
                return Ok(made);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn member(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Inflates `gz` through a `BufReader` of `cap` bytes (small capacities split headers
    /// and trailers across fills) into reads of `out` bytes.
    fn ours(gz: &[u8], cap: usize, out: usize) -> io::Result<Vec<u8>> {
        let mut r = Gunzip::new(io::BufReader::with_capacity(cap, gz));
        let mut all = Vec::new();
        let mut buf = vec![0; out];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(all),
                n => all.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// The independent inflater: flate2 over miniz_oxide.
    fn theirs(gz: &[u8]) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut all)?;
        Ok(all)
    }

    fn sample(len: usize, seed: u64) -> Vec<u8> {
        // Half text-like (compressible), half xorshift noise (stored or literal-heavy blocks).
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i / 4096) % 2 == 0 {
                    b"the layer's files "[i % 18]
                } else {
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn members_inflate_as_flate2_inflates_them() {
        let parts = [
            sample(0, 1),
            sample(1, 2),
            sample(70_000, 3),
            sample(300_000, 4),
        ];
        let mut gz = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            gz.extend(member(p, [0, 1, 6, 9][i]));
        }
        let expected = theirs(&gz).unwrap();
        assert_eq!(expected, parts.concat());
        for (cap, out) in [(1, 1), (7, 3), (64, 4096), (1 << 16, 1 << 17)] {
            assert_eq!(
                ours(&gz, cap, out).unwrap(),
                expected,
                "cap {cap} out {out}"
            );
        }
    }

    #[test]
    fn damaged_streams_are_refused() {
        let good = member(&sample(50_000, 5), 6);
        let n = good.len();
        let mut bad_crc = good.clone();
        bad_crc[n - 8] ^= 1;
        let mut bad_len = good.clone();
        bad_len[n - 1] ^= 1;
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        let mut garbage_after = good.clone();
        garbage_after.extend_from_slice(b"not gzip");
        let cases: [(&str, &[u8], io::ErrorKind); 6] = [
            ("empty", &[], io::ErrorKind::UnexpectedEof),
            ("cut", &good[..n - 3], io::ErrorKind::UnexpectedEof),
            ("crc", &bad_crc, io::ErrorKind::InvalidData),
            ("length", &bad_len, io::ErrorKind::InvalidData),
            ("magic", &bad_magic, io::ErrorKind::InvalidData),
            (
                "garbage after a member",
                &garbage_after,
                io::ErrorKind::InvalidData,
            ),
        ];
        for (name, gz, kind) in cases {
            // The independent inflater refuses each one too.
            assert!(theirs(gz).is_err(), "{name}: flate2 accepts it");
            let err = ours(gz, 1 << 12, 1 << 12).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
        }
    }

    /// `gzip -dc` is the reference: a stream the `gzip` tool wrote (with a file name in its
    /// header, which flate2's encoder never writes), two members, inflated as gzip does.
    #[test]
    fn streams_written_by_the_gzip_tool_inflate_as_gzip_dc_does() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs_err::write(&a, sample(200_000, 6)).unwrap();
        fs_err::write(&b, sample(5_000, 7)).unwrap();
        let mut gz = Vec::new();
        for f in [&a, &b] {
            let out = std::process::Command::new("gzip")
                .args(["-c", "-9"])
                .arg(f)
                .output()
                .expect("gzip (Debian package gzip) runs");
            assert!(out.status.success());
            gz.extend(out.stdout);
        }
        let both = dir.path().join("both.gz");
        fs_err::write(&both, &gz).unwrap();
        let reference = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&both)
            .output()
            .unwrap();
        assert!(reference.status.success());
        assert_eq!(reference.stdout.len(), 205_000);
        assert_eq!(ours(&gz, 1 << 16, 1 << 16).unwrap(), reference.stdout);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Members of any sizes and levels, read through any buffer sizes, inflate to what
        /// flate2 gives; the same stream cut anywhere, or with a byte changed anywhere, is
        /// refused or inflated exactly as flate2 does, without a panic.
        #[test]
        fn any_members_cut_or_changed_anywhere_inflate_as_flate2_does(
            parts in proptest::collection::vec((0usize..20_000, 0u32..10, 0u64..u64::MAX), 1..4),
            cap in 1usize..5000,
            out in 1usize..9000,
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            change in proptest::prelude::any::<(proptest::sample::Index, u8)>(),
        ) {
            let mut gz = Vec::new();
            let mut ends = Vec::new();
            for (len, level, seed) in &parts {
                gz.extend(member(&sample(*len, *seed), *level));
                ends.push(gz.len());
            }
            proptest::prop_assert_eq!(ours(&gz, cap, out).unwrap(), theirs(&gz).unwrap());
            // Cut at a member's end, the stream is whole members; anywhere else it is refused.
            let at = cut.index(gz.len());
            let cut = &gz[..at];
            if ends.contains(&at) {
                proptest::prop_assert_eq!(ours(cut, cap, out).unwrap(), theirs(cut).unwrap());
            } else {
                proptest::prop_assert!(ours(cut, cap, out).is_err(), "cut at {}", at);
                proptest::prop_assert!(theirs(cut).is_err());
            }
            let mut changed = gz.clone();
            let at = change.0.index(changed.len());
            changed[at] ^= change.1.max(1);
            match (ours(&changed, cap, out), theirs(&changed)) {
                (Ok(a), Ok(b)) => proptest::prop_assert!(a == b, "both accept, differently"),
                (Err(_), Err(_)) => {}
                (a, b) => proptest::prop_assert!(
                    false,
                    "byte {at} changed: ours {:?}, flate2's {:?}",
                    a.map(|v| v.len()),
                    b.map(|v| v.len())
                ),
            }
        }
    }
}
