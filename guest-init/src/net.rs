//! rtnetlink requests that configure the network, as bytes (the socket I/O is in `sys`).
//!
//! Three requests suffice for a static configuration: set a link up (`RTM_NEWLINK`), add an
//! IPv4 address (`RTM_NEWADDR`), add a default route (`RTM_NEWROUTE`). Each asks for an ACK,
//! which [`parse_ack`] checks. Layouts are from `linux/netlink.h`, `linux/rtnetlink.h`,
//! `linux/if_addr.h` and `linux/if_link.h`; integers are in host byte order, addresses in
//! network byte order.

use std::net::Ipv4Addr;

/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_NEWADDR`.
pub const RTM_NEWADDR: u16 = 20;
/// `RTM_NEWROUTE`.
pub const RTM_NEWROUTE: u16 = 24;
/// `NLMSG_ERROR` (also carries the ACK, with error 0).
pub const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const NLMSG_HDRLEN: usize = 16;

/// Why a netlink reply is not a successful ACK.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The reply is shorter than the header it claims.
    #[error("netlink reply truncated ({len} bytes)")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The reply is not an `NLMSG_ERROR`.
    #[error("netlink reply has type {msg_type}, expected an ACK")]
    NotAck {
        /// `nlmsg_type`.
        msg_type: u16,
    },
    /// The reply answers another request.
    #[error("netlink reply for sequence {got}, expected {want}")]
    Sequence {
        /// Sequence in the reply.
        got: u32,
        /// Sequence sent.
        want: u32,
    },
    /// The kernel refused the request.
    #[error("netlink request refused: errno {errno}")]
    Refused {
        /// The positive errno.
        errno: i32,
    },
}

/// `RTM_NEWLINK` setting `IFF_UP` on interface `index`.
pub fn link_up(index: u32, seq: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(16);
    body.push(AF_UNSPEC);
    body.push(0); // padding
    body.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    body.extend_from_slice(&index.to_ne_bytes()); // ifi_index
    body.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    body.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &body)
}

/// `RTM_NEWADDR` adding `address/prefix` to interface `index` (replacing an equal one).
pub fn add_address(index: u32, address: Ipv4Addr, prefix: u8, seq: u32) -> Vec<u8> {
    let mut body = vec![AF_INET, prefix, 0, RT_SCOPE_UNIVERSE];
    body.extend_from_slice(&index.to_ne_bytes());
    attr(&mut body, IFA_LOCAL, &address.octets());
    attr(&mut body, IFA_ADDRESS, &address.octets());
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    message(RTM_NEWADDR, flags, seq, &body)
}

/// `RTM_NEWROUTE` adding the default IPv4 route via `gateway` on interface `index`.
pub fn add_default_route(index: u32, gateway: Ipv4Addr, seq: u32) -> Vec<u8> {
    let mut body = vec![
        AF_INET,
        0, // rtm_dst_len: the default route
        0, // rtm_src_len
        0, // rtm_tos
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    attr(&mut body, RTA_GATEWAY, &gateway.octets());
    attr(&mut body, RTA_OIF, &index.to_ne_bytes());
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    message(RTM_NEWROUTE, flags, seq, &body)
}

/// Checks that `reply` is the ACK (an `NLMSG_ERROR` with error 0) for request `seq`.
pub fn parse_ack(reply: &[u8], seq: u32) -> Result<(), Error> {
    let truncated = Error::Truncated { len: reply.len() };
    let u32_at = |off: usize| -> Option<u32> {
        let b = reply.get(off..off.checked_add(4)?)?;
        Some(u32::from_ne_bytes(b.try_into().ok()?))
    };
    let len = u32_at(0).ok_or(Error::Truncated { len: reply.len() })?;
    if usize::try_from(len).map_or(true, |l| l > reply.len() || l < NLMSG_HDRLEN + 4) {
        return Err(truncated);
    }
    let msg_type = reply
        .get(4..6)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes)
        .ok_or(Error::Truncated { len: reply.len() })?;
    if msg_type != NLMSG_ERROR {
        return Err(Error::NotAck { msg_type });
    }
    let got = u32_at(8).ok_or(Error::Truncated { len: reply.len() })?;
    if got != seq {
        return Err(Error::Sequence { got, want: seq });
    }
    let code = u32_at(NLMSG_HDRLEN).ok_or(Error::Truncated { len: reply.len() })? as i32;
    match code {
        0 => Ok(()),
        c => Err(Error::Refused {
            errno: c.checked_neg().unwrap_or(i32::MAX),
        }),
    }
}

fn message(msg_type: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + body.len();
    let mut m = Vec::with_capacity(len);
    // Messages here are under 100 bytes, so the length always fits in u32.
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&msg_type.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    m.extend_from_slice(body);
    m
}

fn attr(buf: &mut Vec<u8>, attr_type: u16, data: &[u8]) {
    // rta_len counts the 4-byte header and the data, not the padding; data here is 4 bytes.
    buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&attr_type.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected bytes written by hand from the kernel UAPI structs (little-endian x86_64):
    // struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }.

    #[test]
    fn link_up_layout() {
        let m = link_up(2, 7);
        #[rustfmt::skip]
        let want = [
            32, 0, 0, 0,  16, 0,  5, 0,  7, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr
            0, 0, 0, 0,  2, 0, 0, 0,  1, 0, 0, 0,  1, 0, 0, 0,    // ifinfomsg
        ];
        assert_eq!(m, want);
    }

    #[test]
    fn add_address_layout() {
        let m = add_address(2, Ipv4Addr::new(10, 0, 2, 15), 24, 8);
        #[rustfmt::skip]
        let want = [
            40, 0, 0, 0,  20, 0,  0x05, 0x05,  8, 0, 0, 0,  0, 0, 0, 0,
            2, 24, 0, 0,  2, 0, 0, 0,            // ifaddrmsg
            8, 0, 2, 0,  10, 0, 2, 15,           // IFA_LOCAL
            8, 0, 1, 0,  10, 0, 2, 15,           // IFA_ADDRESS
        ];
        assert_eq!(m, want);
    }

    #[test]
    fn default_route_layout() {
        let m = add_default_route(3, Ipv4Addr::new(10, 0, 2, 2), 9);
        #[rustfmt::skip]
        let want = [
            44, 0, 0, 0,  24, 0,  0x05, 0x05,  9, 0, 0, 0,  0, 0, 0, 0,
            2, 0, 0, 0,  254, 3, 0, 1,  0, 0, 0, 0, // rtmsg
            8, 0, 5, 0,  10, 0, 2, 2,               // RTA_GATEWAY
            8, 0, 4, 0,  3, 0, 0, 0,                // RTA_OIF
        ];
        assert_eq!(m, want);
    }

    fn reply(msg_type: u16, seq: u32, code: i32) -> Vec<u8> {
        let mut r = message(msg_type, 0, seq, &code.to_ne_bytes());
        r.extend_from_slice(&[0; 16]); // the echoed request header
        let len = r.len() as u32;
        r[..4].copy_from_slice(&len.to_ne_bytes());
        r
    }

    #[test]
    fn acks() {
        assert_eq!(parse_ack(&reply(NLMSG_ERROR, 5, 0), 5), Ok(()));
        assert_eq!(
            parse_ack(&reply(NLMSG_ERROR, 5, -17), 5),
            Err(Error::Refused { errno: 17 })
        );
        assert_eq!(
            parse_ack(&reply(NLMSG_ERROR, 4, 0), 5),
            Err(Error::Sequence { got: 4, want: 5 })
        );
        assert_eq!(
            parse_ack(&reply(16, 5, 0), 5),
            Err(Error::NotAck { msg_type: 16 })
        );
        assert_eq!(parse_ack(&[1, 2, 3], 5), Err(Error::Truncated { len: 3 }));
    }

    proptest::proptest! {
        #[test]
        fn ack_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64), seq: u32) {
            let _ = parse_ack(&bytes, seq);
        }
    }
}
