//! Unified kernel images (UKI): the systemd EFI stub with the kernel, command line, initrd and
//! os-release appended as PE sections, as `ukify build` lays them out.
//!
//! Each new section starts at the next `SectionAlignment` boundary in memory and at the end
//! of the file (a multiple of `FileAlignment`), with `VirtualSize` = the exact payload length
//! (systemd-stub measures `VirtualSize` bytes into PCR 11) and `SizeOfRawData` padded with
//! zeros to `FileAlignment`. The section headers go into the stub's spare header space; the
//! image's `NumberOfSections`, `SizeOfImage` and `SizeOfInitializedData` are updated. Nothing
//! else of the stub changes, so the output depends only on the stub and the payloads.

/// Why a UKI cannot be built from a stub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UkiBuildError {
    /// The stub is not a PE32+ image this writer understands.
    #[error("the UKI stub is not a usable PE32+ EFI image: {0}")]
    Stub(String),
    /// No room for more section headers.
    #[error("the UKI stub has no room for {wanted} more section headers (SizeOfHeaders {size_of_headers:#x}); use systemd's linuxx64.efi.stub")]
    NoHeaderSpace {
        /// Sections to add.
        wanted: usize,
        /// The stub's `SizeOfHeaders`.
        size_of_headers: u32,
    },
    /// A payload does not fit the 32-bit PE fields.
    #[error("UKI section {name} ({len} bytes) does not fit a PE image")]
    TooLarge {
        /// Section name.
        name: &'static str,
        /// Payload length.
        len: usize,
    },
}

/// The sections a UKI gets, in the order ukify appends them (the kernel last).
#[derive(Debug, Clone, Copy)]
pub struct UkiParts<'a> {
    /// `.osrel`: os-release text.
    pub osrel: &'a [u8],
    /// `.cmdline`: the kernel command line (no NUL).
    pub cmdline: &'a [u8],
    /// `.initrd`, if any.
    pub initrd: Option<&'a [u8]>,
    /// `.linux`: the kernel (a PE image with the EFI stub).
    pub linux: &'a [u8],
}

const SECTION_HEADER: usize = 40;
/// `IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ`.
const DATA_READONLY: u32 = 0x4000_0040;

fn rd16(b: &[u8], at: usize) -> Result<u16, UkiBuildError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| UkiBuildError::Stub(format!("truncated at {at:#x}")))
}

fn rd32(b: &[u8], at: usize) -> Result<u32, UkiBuildError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| UkiBuildError::Stub(format!("truncated at {at:#x}")))
}

fn wr32(b: &mut [u8], at: usize, v: u32) -> Result<(), UkiBuildError> {
    b.get_mut(at..at + 4)
        .ok_or_else(|| UkiBuildError::Stub(format!("truncated at {at:#x}")))?
        .copy_from_slice(&v.to_le_bytes());
    Ok(())
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Builds the UKI: `stub` with `parts` appended as sections.
pub fn build_uki(stub: &[u8], parts: &UkiParts<'_>) -> Result<Vec<u8>, UkiBuildError> {
    let mut sections: Vec<(&'static str, &[u8])> =
        vec![(".osrel", parts.osrel), (".cmdline", parts.cmdline)];
    if let Some(i) = parts.initrd {
        sections.push((".initrd", i));
    }
    sections.push((".linux", parts.linux));

    let pe = rd32(stub, 0x3c)? as usize;
    if stub.get(..2) != Some(b"MZ") || stub.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(UkiBuildError::Stub("no MZ/PE signature".into()));
    }
    let coff = pe + 4;
    let nsections = rd16(stub, coff + 2)? as usize;
    let opt_size = rd16(stub, coff + 16)? as usize;
    let opt = coff + 20;
    if rd16(stub, opt)? != 0x20b {
        return Err(UkiBuildError::Stub("not PE32+".into()));
    }
    let section_alignment = u64::from(rd32(stub, opt + 32)?);
    let file_alignment = u64::from(rd32(stub, opt + 36)?);
    let size_of_headers = rd32(stub, opt + 60)?;
    if !section_alignment.is_power_of_two() || !file_alignment.is_power_of_two() {
        return Err(UkiBuildError::Stub(
            "alignments are not powers of two".into(),
        ));
    }
    let table = opt + opt_size;
    let table_end = table + nsections * SECTION_HEADER;
    if table_end + sections.len() * SECTION_HEADER > size_of_headers as usize {
        return Err(UkiBuildError::NoHeaderSpace {
            wanted: sections.len(),
            size_of_headers,
        });
    }
    // The end of the image in memory and in the file, over the existing sections.
    let mut next_va = 0u64;
    let mut file_end = u64::from(size_of_headers);
    for i in 0..nsections {
        let h = table + i * SECTION_HEADER;
        let vs = u64::from(rd32(stub, h + 8)?);
        let va = u64::from(rd32(stub, h + 12)?);
        let raw_size = u64::from(rd32(stub, h + 16)?);
        let raw_ptr = u64::from(rd32(stub, h + 20)?);
        next_va = next_va.max(va + vs.max(raw_size));
        file_end = file_end.max(raw_ptr + raw_size);
    }
    if file_end != stub.len() as u64 {
        return Err(UkiBuildError::Stub(format!(
            "{} bytes after the last section (signed or padded stub)",
            stub.len() as u64 - file_end.min(stub.len() as u64)
        )));
    }
    let mut out = stub.to_vec();
    out.resize(align_up(file_end, file_alignment) as usize, 0);
    let mut va = align_up(next_va, section_alignment);
    let mut init_data = u64::from(rd32(stub, opt + 8)?);
    for (n, (name, payload)) in sections.iter().enumerate() {
        let too_large = || UkiBuildError::TooLarge {
            name,
            len: payload.len(),
        };
        let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
        let raw_size = align_up(u64::from(len), file_alignment);
        let raw_ptr = out.len() as u64;
        let fits = |v: u64| u32::try_from(v).map_err(|_| too_large());
        let mut header = [0u8; SECTION_HEADER];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[8..12].copy_from_slice(&len.to_le_bytes());
        header[12..16].copy_from_slice(&fits(va)?.to_le_bytes());
        header[16..20].copy_from_slice(&fits(raw_size)?.to_le_bytes());
        header[20..24].copy_from_slice(&fits(raw_ptr)?.to_le_bytes());
        header[36..40].copy_from_slice(&DATA_READONLY.to_le_bytes());
        let h = table_end + n * SECTION_HEADER;
        out[h..h + SECTION_HEADER].copy_from_slice(&header);
        out.extend_from_slice(payload);
        out.resize((raw_ptr + raw_size) as usize, 0);
        init_data += raw_size;
        va = align_up(va + u64::from(len), section_alignment);
    }
    let count = u16::try_from(nsections + sections.len())
        .map_err(|_| UkiBuildError::Stub("too many sections".into()))?;
    out[coff + 2..coff + 4].copy_from_slice(&count.to_le_bytes());
    let fits = |v: u64| {
        u32::try_from(v).map_err(|_| UkiBuildError::TooLarge {
            name: ".linux",
            len: parts.linux.len(),
        })
    };
    wr32(&mut out, opt + 8, fits(init_data)?)?;
    wr32(&mut out, opt + 56, fits(va)?)?;
    Ok(out)
}

/// The `.osrel` text for an image: `NAME`, `VERSION` and `ID` (os-release(5)).
pub fn osrel(name: &str, version: &str) -> String {
    format!(
        "ID=enclave\nNAME=\"{name}\"\nVERSION=\"{version}\"\nPRETTY_NAME=\"{name} {version}\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub() -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/uki/linuxx64.efi.stub-257.13");
        fs_err::read(p).unwrap()
    }

    #[test]
    fn sections_are_appended_as_objdump_reads_them() {
        let stub = stub();
        let linux = vec![0xabu8; 5000];
        let uki = build_uki(
            &stub,
            &UkiParts {
                osrel: b"ID=x\n",
                cmdline: b"console=ttyS0",
                initrd: Some(&[1, 2, 3]),
                linux: &linux,
            },
        )
        .unwrap();
        let pe = measurements::tpm::PeFile::parse(&uki).unwrap();
        let names: Vec<String> = pe.sections().iter().map(|s| s.name_lossy()).collect();
        assert_eq!(
            names,
            [
                ".text", ".rodata", ".data", ".sbat", ".sdmagic", ".reloc", ".osrel", ".cmdline",
                ".initrd", ".linux"
            ]
        );
        let cmdline = pe.section(".cmdline").unwrap();
        assert_eq!(cmdline.virtual_size, 13);
        assert_eq!(&pe.raw_data(cmdline)[..13], b"console=ttyS0");
        assert_eq!(cmdline.virtual_address % 0x1000, 0);
        let linux_s = pe.section(".linux").unwrap();
        assert_eq!(pe.raw_data(linux_s)[..5000], linux[..]);
        assert_eq!(uki.len() % 0x200, 0);
        // The stub's own sections are untouched.
        assert_eq!(uki[0x600..0x16800], stub[0x600..0x16800]);
    }
}
