//! Bounds-checked little-endian reads from untrusted bytes (STYLE 8): the one reader every
//! binary parser in the workspace uses (OVMF/TDVF tables, PE images, the veritysetup
//! superblock, EROFS images).
//!
//! Every read returns `None` instead of panicking when it would leave the slice, so parsers
//! turn a short input into a typed error that names the field. Offsets and lengths may come
//! from the input: the end of every range is computed with `checked_add`.
//!
//! ```
//! use measurements::reader;
//! let d = [0x34, 0x12, 0xff];
//! assert_eq!(reader::u16_le(&d, 0), Some(0x1234));
//! assert_eq!(reader::u16_le(&d, 2), None);
//! assert_eq!(reader::slice(&d, usize::MAX, 2), None);
//! ```

/// Returns `len` bytes of `data` starting at `offset`, or `None` if they are not all inside.
pub fn slice(data: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    let end = offset.checked_add(len)?;
    data.get(offset..end)
}

/// Returns the fixed-size array of `data` at `offset`, or `None` if it is not all inside.
pub fn array<const N: usize>(data: &[u8], offset: usize) -> Option<[u8; N]> {
    slice(data, offset, N)?.try_into().ok()
}

/// The byte at `offset`.
pub fn u8_at(data: &[u8], offset: usize) -> Option<u8> {
    data.get(offset).copied()
}

/// A little-endian `u16` at `offset`.
pub fn u16_le(data: &[u8], offset: usize) -> Option<u16> {
    array(data, offset).map(u16::from_le_bytes)
}

/// A little-endian `u32` at `offset`.
pub fn u32_le(data: &[u8], offset: usize) -> Option<u32> {
    array(data, offset).map(u32::from_le_bytes)
}

/// A little-endian `u64` at `offset`.
pub fn u64_le(data: &[u8], offset: usize) -> Option<u64> {
    array(data, offset).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_outside() {
        let d = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u8_at(&d, 8), Some(9));
        assert_eq!(u8_at(&d, 9), None);
        assert_eq!(u16_le(&d, 0), Some(0x0201));
        assert_eq!(u32_le(&d, 1), Some(0x0504_0302));
        assert_eq!(u32_le(&d, 6), None);
        assert_eq!(u64_le(&d, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(u64_le(&d, 2), None);
        assert_eq!(slice(&d, usize::MAX, 2), None);
        assert_eq!(slice(&d, 9, 0), Some(&[][..]));
        assert_eq!(slice(&d, 10, 0), None);
        assert_eq!(array::<2>(&d, usize::MAX), None);
    }
}
