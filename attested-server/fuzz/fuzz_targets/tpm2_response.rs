//! The TPM 2.0 response parsers (`TPM2_CreatePrimary`, `TPM2_Quote`, the empty ones) and the
//! response framing of `Tpm::transact`, over hostile bytes, the stream split at a point the
//! input chooses. Errors are fine; panics are bugs.
#![no_main]

use std::io::{Read, Write};

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unreachable_pub)]
#[path = "../../src/tpm2.rs"]
mod tpm2;

/// Answers every write with the fuzz input, at most `chunk` bytes per read.
struct Stream<'a> {
    reply: &'a [u8],
    chunk: usize,
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reply.len().min(self.chunk).min(buf.len());
        let (head, tail) = self.reply.split_at(n);
        buf[..n].copy_from_slice(head);
        self.reply = tail;
        Ok(n)
    }
}

impl Write for Stream<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = tpm2::parse_quote(data);
    let _ = tpm2::parse_create_primary(data);
    let _ = tpm2::parse_empty(tpm2::Command::PcrExtend, data);
    let _ = tpm2::parse_empty(tpm2::Command::FlushContext, data);
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut tpm = tpm2::Tpm::new(Stream { reply: data, chunk });
    if let Ok(r) = tpm.transact(tpm2::Command::Quote, &[]) {
        let _ = tpm2::parse_quote(&r);
    }
});
