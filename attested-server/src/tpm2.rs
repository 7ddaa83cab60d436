//! The few TPM 2.0 commands a vTPM quote needs, marshalled and unmarshalled by hand (TCG TPM
//! 2.0 Library specification, Part 3 for the commands, Part 2 for the structures; every
//! integer big-endian), and [`Tpm`], which sends them over any `Read + Write`.
//!
//! ```text
//! command   tag u16 | commandSize u32 | commandCode u32 | handles u32... | [authorizationSize u32
//!           | TPMS_AUTH_COMMAND...] | parameters
//! response  tag u16 | responseSize u32 | responseCode u32 | handles u32... | [parameterSize u32]
//!           | parameters | [TPMS_AUTH_RESPONSE...]
//! TPMS_AUTH_COMMAND   sessionHandle u32 (TPM_RS_PW 0x40000009) | nonce TPM2B | attributes u8
//!                     | hmac TPM2B (the password; empty here)
//! ```
//!
//! - [`create_primary`] / [`parse_create_primary`]: `TPM2_CreatePrimary` (0x131) of the
//!   attestation key from [`ak_template`]: a restricted signing ECC NIST P-256 key with the
//!   ECDSA-SHA256 scheme and the object attributes `tpm2_createak` gives its AKs (fixedTPM,
//!   fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign), empty auth and policy,
//!   empty `unique`. A primary key is derived from the hierarchy's seed and the template, so
//!   the same TPM (the same endorsement seed) gives the same AK every time: a verifier can pin
//!   it once.
//! - [`quote`] / [`parse_quote`]: `TPM2_Quote` (0x158) of SHA-256 PCRs ([`PcrSelection`],
//!   by default 4 and 11) with caller-given qualifying data, signed with the key's own scheme
//!   (`inScheme` = `TPM_ALG_NULL`). The answer is the `TPM2B_ATTEST`'s contents
//!   (`TPMS_ATTEST`) and the `TPMT_SIGNATURE` bytes, as `tpm2_quote --message/--signature`
//!   write them.
//! - [`flush_context`]: `TPM2_FlushContext` (0x165), so transient keys do not pile up.
//! - [`pcr_extend`]: `TPM2_PCR_Extend` (0x182) of one SHA-256 digest (tests, tooling).
//!
//! Authorization is one password session (`TPM_RS_PW`) with the empty password: the
//! endorsement hierarchy, the AK and the PCRs all keep their default (empty) auth.
//!
//! A TPM character device (`/dev/tpmrm0`) takes one whole command per `write` and returns one
//! whole response per `read`; swtpm's TCP server port takes the same raw bytes as a stream.
//! [`Tpm::transact`] serves both: it writes the command in full and reads until the
//! response's own `responseSize` has arrived. Parsers never panic on hostile bytes: every read
//! goes through [`measurements::reader`], and a short or inconsistent response is a
//! [`Tpm2Error::Malformed`] naming the command and the field.

use std::io::{Read, Write};

use measurements::reader;

/// `TPM_ST_NO_SESSIONS`.
const ST_NO_SESSIONS: u16 = 0x8001;
/// `TPM_ST_SESSIONS`.
const ST_SESSIONS: u16 = 0x8002;
/// `TPM_RS_PW`: the password authorization session.
const RS_PW: u32 = 0x4000_0009;
/// `TPM_ALG_ECC`.
const ALG_ECC: u16 = 0x0023;
/// `TPM_ALG_SHA256`.
const ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_ECDSA`.
const ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_NULL`.
const ALG_NULL: u16 = 0x0010;
/// `TPM_ECC_NIST_P256`.
const ECC_NIST_P256: u16 = 0x0003;
/// `TPMA_OBJECT`: fixedTPM (bit 1) | fixedParent (4) | sensitiveDataOrigin (5) |
/// userWithAuth (6) | restricted (16) | sign (18), the attributes of `tpm2_createak`'s keys.
/// Changing them changes the AK (and its name) every verifier pinned.
pub const AK_ATTRIBUTES: u32 = 1 << 1 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 16 | 1 << 18;
/// The largest response [`Tpm::transact`] accepts (TPM 2.0 responses are at most a few KiB;
/// `MAX_RESPONSE_SIZE` is 4096 on common TPMs).
pub const MAX_RESPONSE: usize = 8192;
/// How often [`Tpm::exchange`] resends a command the TPM asked to be sent again.
pub const RETRIES: u32 = 10;
/// The DER prefix of a P-256 `SubjectPublicKeyInfo` (RFC 5480: id-ecPublicKey, secp256r1,
/// then a BIT STRING of 66 bytes: 0 unused bits, 0x04, X, Y).
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// The commands this module speaks (named in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `TPM2_CreatePrimary`.
    CreatePrimary,
    /// `TPM2_Quote`.
    Quote,
    /// `TPM2_FlushContext`.
    FlushContext,
    /// `TPM2_PCR_Extend`.
    PcrExtend,
}

impl Command {
    /// `TPM_CC`.
    pub fn code(self) -> u32 {
        match self {
            Command::CreatePrimary => 0x0000_0131,
            Command::Quote => 0x0000_0158,
            Command::FlushContext => 0x0000_0165,
            Command::PcrExtend => 0x0000_0182,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Command::CreatePrimary => "TPM2_CreatePrimary",
            Command::Quote => "TPM2_Quote",
            Command::FlushContext => "TPM2_FlushContext",
            Command::PcrExtend => "TPM2_PCR_Extend",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a TPM command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Tpm2Error {
    /// The command could not be written to the device.
    #[error("{command}: sending the command")]
    Write {
        /// The command.
        command: Command,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The response could not be read from the device.
    #[error("{command}: reading the response")]
    Read {
        /// The command.
        command: Command,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TPM refused the command.
    #[error("{command}: the TPM answered response code {rc:#x} ({})", rc_text(*rc))]
    Response {
        /// The command.
        command: Command,
        /// `TPM_RC`.
        rc: u32,
    },
    /// The response is not what the command returns: short, inconsistent sizes, trailing
    /// bytes, or an unexpected structure.
    #[error("{command}: malformed response: {field}")]
    Malformed {
        /// The command.
        command: Command,
        /// The field (or the check) that failed.
        field: &'static str,
    },
    /// The response announces more than [`MAX_RESPONSE`] bytes.
    #[error("{command}: the response announces {size} bytes, more than {MAX_RESPONSE}")]
    TooLarge {
        /// The command.
        command: Command,
        /// `responseSize`.
        size: u32,
    },
}

/// A `TPM_RC` in words: the name of the common codes (Part 2, "TPM_RC"), and for format-one
/// codes which handle, session or parameter it concerns.
pub fn rc_text(rc: u32) -> String {
    // Codes from the TPM's own layer have the upper 20 bits zero; others (the kernel's
    // resource manager, a TSS) put a layer number there.
    if rc >> 12 != 0 {
        return format!("layer {:#x}, code {:#x}", rc >> 16, rc & 0xffff);
    }
    if rc & 0x080 != 0 {
        // Format one: bits 0..=5 the error, bit 6 parameter, bits 8..=11 the number.
        let name = match rc & 0x3f {
            0x01 => "TPM_RC_ASYMMETRIC",
            0x02 => "TPM_RC_ATTRIBUTES",
            0x03 => "TPM_RC_HASH",
            0x04 => "TPM_RC_VALUE",
            0x05 => "TPM_RC_HIERARCHY",
            0x0b => "TPM_RC_HANDLE",
            0x0e => "TPM_RC_AUTH_FAIL",
            0x12 => "TPM_RC_SCHEME",
            0x15 => "TPM_RC_SIZE",
            0x16 => "TPM_RC_SYMMETRIC",
            0x18 => "TPM_RC_TYPE",
            0x1a => "TPM_RC_KDF",
            0x1c => "TPM_RC_KEY",
            0x22 => "TPM_RC_BAD_AUTH",
            0x23 => "TPM_RC_CURVE",
            _ => "a format-one error",
        };
        let n = (rc >> 8) & 0xf;
        return if rc & 0x040 != 0 {
            format!("{name}, parameter {n}")
        } else if n & 0x8 != 0 {
            format!("{name}, session {}", n & 0x7)
        } else {
            format!("{name}, handle {n}")
        };
    }
    match rc {
        0x100 => "TPM_RC_INITIALIZE: TPM2_Startup has not run".to_owned(),
        0x101 => "TPM_RC_FAILURE: the TPM is in failure mode".to_owned(),
        0x143 => "TPM_RC_COMMAND_CODE: command not supported".to_owned(),
        0x149 => "TPM_RC_AUTH_UNAVAILABLE".to_owned(),
        0x901 => "TPM_RC_CONTEXT_GAP".to_owned(),
        0x902 => "TPM_RC_OBJECT_MEMORY: too many transient objects; flush some".to_owned(),
        0x903 => "TPM_RC_SESSION_MEMORY".to_owned(),
        0x908 => "TPM_RC_YIELDED: retry".to_owned(),
        0x909 => "TPM_RC_CANCELED".to_owned(),
        0x90a => "TPM_RC_TESTING: retry".to_owned(),
        0x921 => "TPM_RC_LOCKOUT: dictionary-attack lockout".to_owned(),
        0x922 => "TPM_RC_RETRY".to_owned(),
        0x923 => "TPM_RC_NV_UNAVAILABLE: retry".to_owned(),
        _ => "see TPM 2.0 Part 2, TPM_RC".to_owned(),
    }
}

/// The hierarchy a primary key is created under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Hierarchy {
    /// `TPM_RH_ENDORSEMENT`: the seed the EK derives from (survives owner changes).
    #[default]
    Endorsement,
    /// `TPM_RH_OWNER`: the storage hierarchy.
    Owner,
}

impl Hierarchy {
    /// The hierarchy's handle.
    pub fn handle(self) -> u32 {
        match self {
            Hierarchy::Endorsement => 0x4000_000b,
            Hierarchy::Owner => 0x4000_0001,
        }
    }
}

/// A set of PCRs of the SHA-256 bank (0..=23), as a `TPMS_PCR_SELECTION` bitmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrSelection([u8; 3]);

impl PcrSelection {
    /// The selection of `pcrs`; `None` if one is outside 0..=23 or none is given.
    pub fn new(pcrs: &[u32]) -> Option<Self> {
        let mut map = [0u8; 3];
        for &p in pcrs {
            let byte = map.get_mut(usize::try_from(p / 8).ok()?)?;
            *byte |= 1 << (p % 8);
        }
        (map != [0; 3]).then_some(Self(map))
    }

    /// The selected PCRs, ascending.
    pub fn pcrs(&self) -> Vec<u32> {
        (0u32..24)
            .filter(|p| {
                reader::u8_at(&self.0, (p / 8) as usize).is_some_and(|b| b & (1 << (p % 8)) != 0)
            })
            .collect()
    }
}

impl Default for PcrSelection {
    /// PCR 4 (the boot path: the UKI) and PCR 11 (the UKI's sections), as the record predicts.
    fn default() -> Self {
        Self([0x10, 0x08, 0x00])
    }
}

/// A primary key the TPM made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    /// The transient handle (flush it with [`flush_context`]).
    pub handle: u32,
    /// `outPublic`: the `TPMT_PUBLIC` (the `TPM2B_PUBLIC`'s contents).
    pub public: Vec<u8>,
    /// `name`: nameAlg || hash of `public` (the quote's `qualifiedSigner` derives from it).
    pub name: Vec<u8>,
    /// The key as a P-256 `SubjectPublicKeyInfo`, DER.
    pub spki_der: Vec<u8>,
}

/// A quote the TPM made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// `quoted`: the `TPMS_ATTEST` (the `TPM2B_ATTEST`'s contents); the signed bytes.
    pub attest: Vec<u8>,
    /// `signature`: the `TPMT_SIGNATURE`.
    pub signature: Vec<u8>,
}

/// The attestation key's `TPMT_PUBLIC` template (see the module docs).
pub fn ak_template() -> Vec<u8> {
    let mut t = Vec::with_capacity(32);
    t.extend_from_slice(&ALG_ECC.to_be_bytes()); // type
    t.extend_from_slice(&ALG_SHA256.to_be_bytes()); // nameAlg
    t.extend_from_slice(&AK_ATTRIBUTES.to_be_bytes()); // objectAttributes
    t.extend_from_slice(&0u16.to_be_bytes()); // authPolicy: empty

    // TPMS_ECC_PARMS.
    t.extend_from_slice(&ALG_NULL.to_be_bytes()); // symmetric: none (a signing key)
    t.extend_from_slice(&ALG_ECDSA.to_be_bytes()); // scheme
    t.extend_from_slice(&ALG_SHA256.to_be_bytes()); // scheme.hashAlg
    t.extend_from_slice(&ECC_NIST_P256.to_be_bytes()); // curveID
    t.extend_from_slice(&ALG_NULL.to_be_bytes()); // kdf: none
    t.extend_from_slice(&[0, 0, 0, 0]); // unique: TPMS_ECC_POINT, x and y empty
    t
}

/// `TPM2_CreatePrimary` of [`ak_template`] under `hierarchy`.
pub fn create_primary(hierarchy: Hierarchy) -> Vec<u8> {
    let template = ak_template();
    let mut params = Vec::new();
    // inSensitive: TPM2B_SENSITIVE_CREATE holding an empty userAuth and empty data.
    params.extend_from_slice(&[0, 4, 0, 0, 0, 0]);
    put_tpm2b(&mut params, &template); // inPublic
    params.extend_from_slice(&0u16.to_be_bytes()); // outsideInfo: empty
    params.extend_from_slice(&0u32.to_be_bytes()); // creationPCR: no banks
    command_with_password(Command::CreatePrimary, hierarchy.handle(), &params)
}

/// The key in a `TPM2_CreatePrimary` response (see [`create_primary`]).
pub fn parse_create_primary(response: &[u8]) -> Result<CreatedKey, Tpm2Error> {
    let command = Command::CreatePrimary;
    let mut r = Response::new(command, response, true)?;
    let handle = r.u32("objectHandle")?;
    let mut p = r.parameters()?;
    let public = p.tpm2b("outPublic")?.to_vec();
    p.tpm2b("creationData")?;
    p.tpm2b("creationHash")?;
    p.take(2 + 4, "creationTicket.tag, hierarchy")?;
    p.tpm2b("creationTicket.digest")?;
    let name = p.tpm2b("name")?.to_vec();
    p.end()?;
    let spki_der = p256_spki(command, &public)?;
    Ok(CreatedKey {
        handle,
        public,
        name,
        spki_der,
    })
}

/// `TPM2_Quote` with the key at `handle` of the SHA-256 PCRs in `pcrs`, qualifying data
/// `qualifying`, the key's own signing scheme.
pub fn quote(handle: u32, qualifying: &[u8; 32], pcrs: &PcrSelection) -> Vec<u8> {
    let mut params = Vec::new();
    put_tpm2b(&mut params, qualifying); // qualifyingData
    params.extend_from_slice(&ALG_NULL.to_be_bytes()); // inScheme: the key's scheme
    params.extend_from_slice(&1u32.to_be_bytes()); // PCRselect: one bank
    params.extend_from_slice(&ALG_SHA256.to_be_bytes());
    params.push(3); // sizeofSelect: PCRs 0..=23
    params.extend_from_slice(&pcrs.0);
    command_with_password(Command::Quote, handle, &params)
}

/// The quote in a `TPM2_Quote` response: `quoted` and `signature`.
pub fn parse_quote(response: &[u8]) -> Result<Quote, Tpm2Error> {
    let mut r = Response::new(Command::Quote, response, true)?;
    let mut p = r.parameters()?;
    let attest = p.tpm2b("quoted")?.to_vec();
    // TPMT_SIGNATURE: sigAlg u16 | hash u16 | per algorithm: ECDSA r, s; RSA sig (TPM2B each).
    let sig_start = p.at;
    let alg = p.u16("signature.sigAlg")?;
    if alg == ALG_NULL {
        return Err(p.malformed("signature: TPM_ALG_NULL (the key cannot sign)"));
    }
    p.u16("signature.hash")?;
    p.tpm2b("signature")?;
    if alg == ALG_ECDSA {
        p.tpm2b("signature.signatureS")?;
    }
    let signature = p.bytes.get(sig_start..p.at).unwrap_or_default().to_vec();
    p.end()?;
    Ok(Quote { attest, signature })
}

/// `TPM2_FlushContext` of `handle`.
pub fn flush_context(handle: u32) -> Vec<u8> {
    let size = 10u32 + 4;
    let mut c = Vec::with_capacity(14);
    c.extend_from_slice(&ST_NO_SESSIONS.to_be_bytes());
    c.extend_from_slice(&size.to_be_bytes());
    c.extend_from_slice(&Command::FlushContext.code().to_be_bytes());
    c.extend_from_slice(&handle.to_be_bytes()); // flushHandle (a parameter)
    c
}

/// `TPM2_PCR_Extend` of SHA-256 PCR `pcr` with `digest`.
pub fn pcr_extend(pcr: u32, digest: &[u8; 32]) -> Vec<u8> {
    let mut params = Vec::new();
    params.extend_from_slice(&1u32.to_be_bytes()); // TPML_DIGEST_VALUES: one TPMT_HA
    params.extend_from_slice(&ALG_SHA256.to_be_bytes());
    params.extend_from_slice(digest);
    command_with_password(Command::PcrExtend, pcr, &params)
}

/// Checks a response that carries nothing but its code (`TPM2_FlushContext`,
/// `TPM2_PCR_Extend`).
pub fn parse_empty(command: Command, response: &[u8]) -> Result<(), Tpm2Error> {
    let mut r = Response::new(command, response, false)?;
    if r.tag == ST_SESSIONS {
        r.parameters()?.end()?;
    } else {
        r.end()?;
    }
    Ok(())
}

/// A P-256 public key as a `SubjectPublicKeyInfo` (DER), from its affine coordinates
/// (left-padded to 32 bytes); `None` if one is longer than 32 bytes.
pub fn p256_spki_der(x: &[u8], y: &[u8]) -> Option<Vec<u8>> {
    let mut out = P256_SPKI_PREFIX.to_vec();
    for c in [x, y] {
        let pad = 32usize.checked_sub(c.len())?;
        out.extend(std::iter::repeat_n(0, pad));
        out.extend_from_slice(c);
    }
    Some(out)
}

/// The SPKI of the P-256 key in `public` (a `TPMT_PUBLIC`).
fn p256_spki(command: Command, public: &[u8]) -> Result<Vec<u8>, Tpm2Error> {
    let mut p = Cursor {
        command,
        bytes: public,
        at: 0,
    };
    if p.u16("outPublic.type")? != ALG_ECC {
        return Err(p.malformed("outPublic.type: not TPM_ALG_ECC"));
    }
    p.u16("outPublic.nameAlg")?;
    p.u32("outPublic.objectAttributes")?;
    p.tpm2b("outPublic.authPolicy")?;
    if p.u16("outPublic.parameters.symmetric")? != ALG_NULL {
        return Err(p.malformed("outPublic.parameters.symmetric: not TPM_ALG_NULL"));
    }
    if p.u16("outPublic.parameters.scheme")? != ALG_ECDSA {
        return Err(p.malformed("outPublic.parameters.scheme: not TPM_ALG_ECDSA"));
    }
    p.u16("outPublic.parameters.scheme.hashAlg")?;
    if p.u16("outPublic.parameters.curveID")? != ECC_NIST_P256 {
        return Err(p.malformed("outPublic.parameters.curveID: not TPM_ECC_NIST_P256"));
    }
    if p.u16("outPublic.parameters.kdf")? != ALG_NULL {
        return Err(p.malformed("outPublic.parameters.kdf: not TPM_ALG_NULL"));
    }
    let x = p.tpm2b("outPublic.unique.x")?;
    let y = p.tpm2b("outPublic.unique.y")?;
    p.end()?;
    p256_spki_der(x, y).ok_or_else(|| p.malformed("outPublic.unique: a coordinate over 32 bytes"))
}

/// A command with one handle, one empty password session, and `params`.
fn command_with_password(command: Command, handle: u32, params: &[u8]) -> Vec<u8> {
    // TPMS_AUTH_COMMAND: TPM_RS_PW, empty nonce, attributes 0, empty password.
    let auth: [u8; 9] = {
        let mut a = [0u8; 9];
        a[..4].copy_from_slice(&RS_PW.to_be_bytes());
        a
    };
    let mut c = Vec::with_capacity(10 + 4 + 4 + auth.len() + params.len());
    c.extend_from_slice(&ST_SESSIONS.to_be_bytes());
    c.extend_from_slice(&[0; 4]); // commandSize, set below
    c.extend_from_slice(&command.code().to_be_bytes());
    c.extend_from_slice(&handle.to_be_bytes());
    c.extend_from_slice(&(auth.len() as u32).to_be_bytes());
    c.extend_from_slice(&auth);
    c.extend_from_slice(params);
    // Commands are a few hundred bytes at most (a template, 32 bytes of data).
    let size = u32::try_from(c.len()).unwrap_or(u32::MAX);
    c[2..6].copy_from_slice(&size.to_be_bytes());
    c
}

/// Appends a `TPM2B`: u16 size, then the bytes (callers pass at most a template's size).
fn put_tpm2b(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A bounds-checked big-endian cursor over a response; every failure names the command and
/// the field.
struct Cursor<'a> {
    command: Command,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, field: &'static str) -> Tpm2Error {
        Tpm2Error::Malformed {
            command: self.command,
            field,
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Tpm2Error> {
        let s = reader::slice(self.bytes, self.at, n).ok_or_else(|| self.malformed(field))?;
        self.at += n; // cannot overflow: `slice` checked at + n <= len
        Ok(s)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, Tpm2Error> {
        let b = reader::array(self.bytes, self.at).ok_or_else(|| self.malformed(field))?;
        self.at += 2;
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, Tpm2Error> {
        let b = reader::array(self.bytes, self.at).ok_or_else(|| self.malformed(field))?;
        self.at += 4;
        Ok(u32::from_be_bytes(b))
    }

    fn tpm2b(&mut self, field: &'static str) -> Result<&'a [u8], Tpm2Error> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
    }

    fn end(&self) -> Result<(), Tpm2Error> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.malformed("bytes after the last field"))
        }
    }
}

/// A response whose header has been checked (size, code), positioned after it.
struct Response<'a> {
    cursor: Cursor<'a>,
    tag: u16,
}

impl<'a> Response<'a> {
    /// Checks the header: `responseSize` is the length, the code is success, and (when
    /// `sessions`, for commands sent with a session) the tag is `TPM_ST_SESSIONS`.
    fn new(command: Command, bytes: &'a [u8], sessions: bool) -> Result<Self, Tpm2Error> {
        let mut cursor = Cursor {
            command,
            bytes,
            at: 0,
        };
        let tag = cursor.u16("tag")?;
        let size = cursor.u32("responseSize")?;
        let rc = cursor.u32("responseCode")?;
        if usize::try_from(size).ok() != Some(bytes.len()) {
            return Err(cursor.malformed("responseSize: not the response's length"));
        }
        if rc != 0 {
            return Err(Tpm2Error::Response { command, rc });
        }
        let want = if sessions { ST_SESSIONS } else { tag };
        if tag != want || (tag != ST_SESSIONS && tag != ST_NO_SESSIONS) {
            return Err(cursor.malformed("tag: not the one the command was sent with"));
        }
        Ok(Self { cursor, tag })
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, Tpm2Error> {
        self.cursor.u32(field)
    }

    /// The parameter area (after `parameterSize`); the rest must be one
    /// `TPMS_AUTH_RESPONSE` (nonce, attributes, hmac).
    fn parameters(&mut self) -> Result<Cursor<'a>, Tpm2Error> {
        let c = &mut self.cursor;
        let n = c.u32("parameterSize")?;
        let n = usize::try_from(n).map_err(|_| c.malformed("parameterSize"))?;
        let params = c.take(n, "parameters (parameterSize past the end)")?;
        c.tpm2b("authorization.nonce")?;
        c.take(1, "authorization.sessionAttributes")?;
        c.tpm2b("authorization.hmac")?;
        c.end()?;
        Ok(Cursor {
            command: c.command,
            bytes: params,
            at: 0,
        })
    }

    fn end(&self) -> Result<(), Tpm2Error> {
        self.cursor.end()
    }
}

/// A TPM reached through a byte stream: a character device (`/dev/tpmrm0`, one command per
/// write, one response per read) or a raw TPM command socket (swtpm's server port).
#[derive(Debug)]
pub struct Tpm<D> {
    device: D,
}

impl<D: Read + Write> Tpm<D> {
    /// The TPM behind `device`. It must be started (`TPM2_Startup`): the kernel does that for
    /// `/dev/tpmrm0`, and swtpm with `--flags startup-clear`.
    pub fn new(device: D) -> Self {
        Self { device }
    }

    /// Sends `bytes` (one marshalled `command`) and returns the whole response, unparsed.
    pub fn transact(&mut self, command: Command, bytes: &[u8]) -> Result<Vec<u8>, Tpm2Error> {
        self.device
            .write_all(bytes)
            .and_then(|()| self.device.flush())
            .map_err(|source| Tpm2Error::Write { command, source })?;
        let mut buf = vec![0u8; MAX_RESPONSE];
        let mut have = 0usize;
        let mut want = None;
        while want.is_none_or(|w| have < w) {
            let room = buf.get_mut(have..).unwrap_or_default();
            let n = self
                .device
                .read(room)
                .map_err(|source| Tpm2Error::Read { command, source })?;
            if n == 0 {
                return Err(Tpm2Error::Read {
                    command,
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            have += n;
            // responseSize is bytes 2..6 of the header.
            let size = match want {
                None if have >= 6 => reader::array(&buf, 2).map(u32::from_be_bytes),
                _ => None,
            };
            if let Some(size) = size {
                let n = usize::try_from(size).unwrap_or(usize::MAX);
                if n > MAX_RESPONSE {
                    return Err(Tpm2Error::TooLarge { command, size });
                }
                if n < 10 {
                    return Err(Tpm2Error::Malformed {
                        command,
                        field: "responseSize: shorter than the header",
                    });
                }
                want = Some(n);
            }
        }
        buf.truncate(have);
        Ok(buf)
    }

    /// [`Tpm::transact`], resending the command while the TPM asks for that
    /// (`TPM_RC_RETRY`, `TPM_RC_YIELDED`, `TPM_RC_TESTING`; Part 2, "TPM_RC": warnings that
    /// mean "send it again"), at most [`RETRIES`] times.
    pub fn exchange(&mut self, command: Command, bytes: &[u8]) -> Result<Vec<u8>, Tpm2Error> {
        let mut tries = 0;
        loop {
            let r = self.transact(command, bytes)?;
            let rc = reader::array(&r, 6).map(u32::from_be_bytes);
            if tries < RETRIES && matches!(rc, Some(0x922 | 0x908 | 0x90a)) {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            return Ok(r);
        }
    }

    /// Creates the attestation key ([`ak_template`]) under `hierarchy`.
    pub fn create_ak(&mut self, hierarchy: Hierarchy) -> Result<CreatedKey, Tpm2Error> {
        let r = self.exchange(Command::CreatePrimary, &create_primary(hierarchy))?;
        parse_create_primary(&r)
    }

    /// Quotes `pcrs` with the key at `handle` and `qualifying` as the qualifying data.
    pub fn quote(
        &mut self,
        handle: u32,
        qualifying: &[u8; 32],
        pcrs: &PcrSelection,
    ) -> Result<Quote, Tpm2Error> {
        let r = self.exchange(Command::Quote, &quote(handle, qualifying, pcrs))?;
        parse_quote(&r)
    }

    /// Flushes the transient object or session at `handle`.
    pub fn flush(&mut self, handle: u32) -> Result<(), Tpm2Error> {
        let r = self.exchange(Command::FlushContext, &flush_context(handle))?;
        parse_empty(Command::FlushContext, &r)
    }

    /// Extends SHA-256 PCR `pcr` with `digest`.
    pub fn pcr_extend(&mut self, pcr: u32, digest: &[u8; 32]) -> Result<(), Tpm2Error> {
        let r = self.exchange(Command::PcrExtend, &pcr_extend(pcr, digest))?;
        parse_empty(Command::PcrExtend, &r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte layouts written out by hand from Part 3's command tables (independent of the
    /// builders above): FlushContext and the Quote header.
    #[test]
    fn commands_have_the_layout_of_part_3() {
        assert_eq!(
            hex::encode(flush_context(0x8000_0000)),
            "80010000000e0000016580000000"
        );
        let q = quote(0x8000_0001, &[0xaa; 32], &PcrSelection::default());
        let want = [
            "8002",                      // TPM_ST_SESSIONS
            &format!("{:08x}", q.len()), // commandSize
            "00000158",                  // TPM_CC_Quote
            "80000001",                  // signHandle
            "00000009",                  // authorizationSize
            "400000090000000000",        // TPM_RS_PW, nonce, attributes, hmac
            "0020",                      // qualifyingData: size, then the bytes
            &"aa".repeat(32),
            "0010",                 // inScheme TPM_ALG_NULL
            "00000001000b03100800", // one bank, SHA-256, 3 bytes: PCRs 4 and 11
        ]
        .concat();
        assert_eq!(hex::encode(&q), want);
    }

    #[test]
    fn pcr_selection_is_checked() {
        assert_eq!(PcrSelection::new(&[4, 11]), Some(PcrSelection::default()));
        assert_eq!(PcrSelection::new(&[0, 23]).unwrap().pcrs(), [0, 23]);
        assert_eq!(PcrSelection::new(&[24]), None);
        assert_eq!(PcrSelection::new(&[]), None);
        assert_eq!(PcrSelection::default().pcrs(), [4, 11]);
    }

    #[test]
    fn error_responses_name_the_command_and_code() {
        // TPM_RC_BAD_AUTH on session 1 (0x9a2), as a TPM answers a wrong password.
        let e = parse_quote(&hex::decode("80010000000a000009a2").unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TPM2_Quote: the TPM answered response code 0x9a2 (TPM_RC_BAD_AUTH, session 1)"
        );
        let e = parse_empty(
            Command::FlushContext,
            &hex::decode("80010000000a00000100").unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("TPM_RC_INITIALIZE"), "{e}");
    }

    /// Hostile responses: every prefix and every single-byte change of a well-formed one
    /// parses to a result or an error, never a panic; a size that disagrees is refused.
    #[test]
    fn hostile_responses_never_panic() {
        let mut ok = hex::decode("80020000000000000000").unwrap();
        let params = {
            let mut p = Vec::new();
            put_tpm2b(&mut p, b"ATTEST");
            p.extend_from_slice(&[0x00, 0x18, 0x00, 0x0b, 0, 1, 7, 0, 1, 9]);
            p
        };
        ok.extend_from_slice(&u32::try_from(params.len()).unwrap().to_be_bytes());
        ok.extend_from_slice(&params);
        ok.extend_from_slice(&[0, 0, 1, 0, 0]);
        let n = u32::try_from(ok.len()).unwrap();
        ok[2..6].copy_from_slice(&n.to_be_bytes());
        let q = parse_quote(&ok).unwrap();
        assert_eq!(q.attest, b"ATTEST");
        assert_eq!(q.signature, [0x00, 0x18, 0x00, 0x0b, 0, 1, 7, 0, 1, 9]);
        for cut in 0..ok.len() {
            assert!(parse_quote(&ok[..cut]).is_err(), "prefix {cut} accepted");
            let _ = parse_create_primary(&ok[..cut]);
        }
        for i in 0..ok.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = ok.clone();
                b[i] = v;
                let _ = parse_quote(&b);
                let _ = parse_create_primary(&b);
                let _ = parse_empty(Command::PcrExtend, &b);
            }
        }
    }

    /// A stream that answers each write with `reply`, `chunk` bytes per read (a TCP
    /// socket may split a response; a character device never does).
    struct Chunked {
        reply: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let rest = self.reply.get(self.at..).unwrap_or_default();
            let n = rest.len().min(self.chunk).min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Chunked {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn transact(reply: &str, chunk: usize) -> Result<Vec<u8>, Tpm2Error> {
        let reply = hex::decode(reply).unwrap();
        Tpm::new(Chunked {
            reply,
            at: 0,
            chunk,
        })
        .transact(Command::FlushContext, &flush_context(0x8000_0000))
    }

    #[test]
    fn transact_reads_until_the_announced_size() {
        let ok = "80010000000a00000000";
        for chunk in [1, 3, 10, 4096] {
            assert_eq!(hex::encode(transact(ok, chunk).unwrap()), ok);
        }
        // The stream ends early: an error, not a hang or a short response.
        let e = transact("80010000000c00000000", 4).unwrap_err();
        assert!(matches!(e, Tpm2Error::Read { .. }), "{e}");
        // A size over the bound, or under the header's, is refused before reading on.
        let e = transact("80010001000000000000", 4096).unwrap_err();
        assert!(matches!(e, Tpm2Error::TooLarge { size: 65536, .. }), "{e}");
        let e = transact("800100000004", 4096).unwrap_err();
        assert!(matches!(e, Tpm2Error::Malformed { .. }), "{e}");
    }

    #[test]
    fn p256_spki_is_padded_and_bounded() {
        let spki = p256_spki_der(&[1], &[2; 32]).unwrap();
        assert_eq!(spki.len(), 91);
        assert_eq!(spki[27..59], [[0u8; 31].as_slice(), &[1]].concat());
        assert!(p256_spki_der(&[1; 33], &[2]).is_none());
    }
}
