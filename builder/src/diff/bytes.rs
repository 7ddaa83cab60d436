//! Opaque binaries: the first differing offset and, where an ELF or PE section table covers
//! it, the section. Both tables are read from hostile bytes with checked reads only.

use measurements::tpm::PeFile;

use super::{first_difference, Difference};

/// Describes a byte difference between `a` and `b` (one entry; none when they are equal).
pub fn diff(name: &str, a: &[u8], b: &[u8]) -> Vec<Difference> {
    let Some(off) = first_difference(a, b) else {
        return Vec::new();
    };
    let location = section_at(a, off as u64)
        .map(|s| format!("section {s}"))
        .unwrap_or_else(|| "(bytes)".to_owned());
    let mut d = Difference::new(name, location, "bytes").at(off as u64);
    if a.len() != b.len() {
        d = Difference {
            field: "bytes (sizes differ)".to_owned(),
            ..d
        }
        .values(a.len(), b.len());
    } else {
        let n = a.iter().zip(b).filter(|(x, y)| x != y).count();
        d.field = format!("bytes ({n} differ)");
    }
    vec![d]
}

/// The ELF or PE section whose file range holds `offset`, with its range.
pub fn section_at(file: &[u8], offset: u64) -> Option<String> {
    elf_section_at(file, offset).or_else(|| pe_section_at(file, offset))
}

fn pe_section_at(file: &[u8], offset: u64) -> Option<String> {
    let pe = PeFile::parse(file).ok()?;
    pe.sections().iter().find_map(|s| {
        let start = u64::from(s.pointer_to_raw_data);
        let end = start.checked_add(u64::from(s.size_of_raw_data))?;
        (start..end)
            .contains(&offset)
            .then(|| format!("{} (PE, +{})", s.name_lossy(), offset - start))
    })
}

fn elf_section_at(f: &[u8], offset: u64) -> Option<String> {
    if f.get(..4)? != b"\x7fELF" || *f.get(5)? != 1 {
        return None; // not ELF, or big-endian (not handled)
    }
    let wide = match *f.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (
            le(f, 0x28, 8)?,
            le(f, 0x3a, 2)?,
            le(f, 0x3c, 2)?,
            le(f, 0x3e, 2)?,
        )
    } else {
        (
            le(f, 0x20, 4)?,
            le(f, 0x2e, 2)?,
            le(f, 0x30, 2)?,
            le(f, 0x32, 2)?,
        )
    };
    let header = |i: u64| -> Option<(u64, u32, u64, u64)> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = le(f, h, 4)? as u32;
        let ty = le(f, h.checked_add(4)?, 4)? as u32;
        let (o, s) = if wide {
            (
                le(f, h.checked_add(0x18)?, 8)?,
                le(f, h.checked_add(0x20)?, 8)?,
            )
        } else {
            (
                le(f, h.checked_add(0x10)?, 4)?,
                le(f, h.checked_add(0x14)?, 4)?,
            )
        };
        Some((name as u64, ty, o, s))
    };
    let (_, _, strtab, strsize) = header(shstrndx)?;
    for i in 0..shnum {
        let (name, ty, o, s) = header(i)?;
        const SHT_NOBITS: u32 = 8;
        if ty == SHT_NOBITS || !(o..o.checked_add(s)?).contains(&offset) {
            continue;
        }
        let name = if name < strsize {
            let start = usize::try_from(strtab.checked_add(name)?).ok()?;
            let bytes = f.get(start..)?;
            let end = bytes.iter().position(|&c| c == 0)?;
            String::from_utf8_lossy(bytes.get(..end)?).into_owned()
        } else {
            format!("#{i}")
        };
        return Some(format!("{name} (ELF, +{})", offset - o));
    }
    None
}

/// A little-endian unsigned integer of `n` bytes at `at`, bounds-checked.
fn le(f: &[u8], at: u64, n: usize) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let b = f.get(at..at.checked_add(n)?)?;
    Some(b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
}
