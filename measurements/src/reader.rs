//! Bounds-checked little-endian reads from untrusted bytes (STYLE 8).
//!
//! Every read returns `None` instead of panicking when it would leave the slice, so parsers
//! turn a short input into a typed error that names the field.

/// Returns `len` bytes of `data` starting at `offset`, or `None` if they are not all inside.
pub(crate) fn slice(data: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    let end = offset.checked_add(len)?;
    data.get(offset..end)
}

/// Returns the fixed-size array of `data` at `offset`, or `None` if it is not all inside.
pub(crate) fn array<const N: usize>(data: &[u8], offset: usize) -> Option<[u8; N]> {
    slice(data, offset, N)?.try_into().ok()
}

/// A little-endian `u16` at `offset`.
pub(crate) fn u16_le(data: &[u8], offset: usize) -> Option<u16> {
    array(data, offset).map(u16::from_le_bytes)
}

/// A little-endian `u32` at `offset`.
pub(crate) fn u32_le(data: &[u8], offset: usize) -> Option<u32> {
    array(data, offset).map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_outside() {
        let d = [1u8, 2, 3, 4, 5];
        assert_eq!(u16_le(&d, 0), Some(0x0201));
        assert_eq!(u32_le(&d, 1), Some(0x0504_0302));
        assert_eq!(u32_le(&d, 2), None);
        assert_eq!(slice(&d, usize::MAX, 2), None);
        assert_eq!(slice(&d, 5, 0), Some(&[][..]));
    }
}
