//! Digest newtypes: parsed once from hex, printed as lowercase hex.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestParseError {
    /// The string does not have the digest's length in hex characters.
    #[error("a {algorithm} digest is {expected} hex characters, found {found}")]
    Length {
        /// `sha256` or `sha384`.
        algorithm: &'static str,
        /// Expected number of hex characters.
        expected: usize,
        /// Number of characters found.
        found: usize,
    },
    /// A character is not a hex digit.
    #[error("a {algorithm} digest is hexadecimal; found {character:?} at position {position}")]
    NotHex {
        /// `sha256` or `sha384`.
        algorithm: &'static str,
        /// The offending character.
        character: char,
        /// Its position in the string.
        position: usize,
    },
}

macro_rules! digest_type {
    ($name:ident, $len:expr, $alg:literal, $hasher:ty) => {
        #[doc = concat!("A ", $alg, " digest (", stringify!($len), " bytes). Parses from and prints as lowercase hex; an optional `", $alg, ":` prefix is accepted.")]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Number of bytes in the digest.
            pub const LEN: usize = $len;

            #[doc = concat!("The ", $alg, " of `data`.")]
            pub fn of(data: &[u8]) -> Self {
                Self(<$hasher>::digest(data).into())
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(b: [u8; $len]) -> Self {
                Self(b)
            }
        }

        impl FromStr for $name {
            type Err = DigestParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.strip_prefix(concat!($alg, ":")).unwrap_or(s);
                if s.len() != 2 * $len {
                    return Err(DigestParseError::Length {
                        algorithm: $alg,
                        expected: 2 * $len,
                        found: s.chars().count(),
                    });
                }
                if let Some((position, character)) =
                    s.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit())
                {
                    return Err(DigestParseError::NotHex { algorithm: $alg, character, position });
                }
                let mut out = [0u8; $len];
                // Length and alphabet were checked above, so decoding cannot fail.
                hex::decode_to_slice(s, &mut out).map_err(|_| DigestParseError::Length {
                    algorithm: $alg,
                    expected: 2 * $len,
                    found: s.len(),
                })?;
                Ok(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($alg, ":{}"), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(Sha256Digest, 32, "sha256", sha2::Sha256);
digest_type!(Sha384Digest, 48, "sha384", sha2::Sha384);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_prefix() {
        // FIPS 180-2 appendix B.1: SHA-256("abc").
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Sha256Digest::of(b"abc").to_hex(), want);
        let a: Sha256Digest = want.parse().unwrap();
        let b: Sha256Digest = format!("sha256:{want}").parse().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_bad_length_and_alphabet() {
        assert!(matches!(
            "abc".parse::<Sha256Digest>(),
            Err(DigestParseError::Length { found: 3, .. })
        ));
        let bad = "g".repeat(96);
        assert!(matches!(
            bad.parse::<Sha384Digest>(),
            Err(DigestParseError::NotHex { position: 0, .. })
        ));
    }
}
