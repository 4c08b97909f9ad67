//! The STUN binding responder: tells a node which address its datagrams arrive from (its
//! server-reflexive address), so that ICE behind a NAT can offer a `srflx` candidate.
//!
//! [`answer`] is the whole protocol and does no I/O: a datagram and its source in, a Binding
//! success response (or a typed refusal) out. `serve` is the thin driver: one reusable
//! buffer, no per-peer state, and two rate limits on answers, all sources together
//! ([`Config::stun_answers_per_second`]) and per source ([`Config::stun_answers_per_source`],
//! over [`SOURCE_BUCKETS`] fixed buckets), so the responder cannot be used as a reflector at
//! line rate. Only Binding requests are answered (RFC 8489 §6.3.1, no authentication);
//! everything else is dropped silently, as STUN asks for datagrams that are not STUN.
//!
//! [`Config::stun_answers_per_second`]: crate::Config::stun_answers_per_second
//! [`Config::stun_answers_per_source`]: crate::Config::stun_answers_per_source

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::DefaultClock;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rtc_stun::attributes::{ATTR_FINGERPRINT, ATTR_SOFTWARE};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::message::{
    BINDING_REQUEST, BINDING_SUCCESS, MAGIC_COOKIE, MESSAGE_HEADER_SIZE, Message, Setter,
};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::metrics::Reason;

/// The largest datagram answered, in bytes: a Binding request is 20 bytes plus a few
/// attributes, and anything larger than an Ethernet MTU is not one a client would send.
pub const MAX_REQUEST: usize = 1500;

/// How many per-source rate-limit buckets the responder keeps. A source (an IPv4 address,
/// or an IPv6 /64, which one host usually owns whole) is hashed to one bucket; sources that
/// share a bucket share its budget. The memory is fixed (8 bytes a bucket) whatever the
/// number of sources, spoofed or not.
pub const SOURCE_BUCKETS: usize = 1 << BUCKET_BITS;
const BUCKET_BITS: u32 = 12;

/// The SOFTWARE attribute of every answer.
const SOFTWARE: &str = concat!("bootstrap-server/", env!("CARGO_PKG_VERSION"));

/// Why a datagram gets no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// The datagram is larger than [`MAX_REQUEST`].
    #[error(
        "datagram of {len} bytes or more is larger than the {MAX_REQUEST} bytes a Binding request may take"
    )]
    Oversized {
        /// The datagram's length as received (at least `MAX_REQUEST + 1`).
        len: usize,
    },
    /// The datagram is shorter than the 20-byte STUN header.
    #[error("datagram of {len} bytes is shorter than the 20-byte STUN header")]
    Truncated {
        /// The datagram's length.
        len: usize,
    },
    /// The header's first two bits are not zero or the magic cookie is missing.
    #[error("not a STUN message: no magic cookie {MAGIC_COOKIE:#010x} or leading bits set")]
    NotStun,
    /// The header's length field disagrees with the datagram, or is not a multiple of 4.
    #[error(
        "STUN header declares {declared} bytes of attributes but the datagram carries {actual} (a multiple of 4 is required)"
    )]
    LengthMismatch {
        /// The attribute length the header declares.
        declared: usize,
        /// The bytes after the header.
        actual: usize,
    },
    /// The message is not a Binding request (it is a response, an indication, or another
    /// method); only Binding requests are answered.
    #[error(
        "STUN message type {message_type:#06x} is not a Binding request (0x0001); only Binding requests are answered"
    )]
    NotBindingRequest {
        /// The message type field (method and class) as sent.
        message_type: u16,
    },
    /// An attribute is cut short or otherwise undecodable.
    #[error("malformed STUN attributes: {0}")]
    Malformed(String),
    /// A FINGERPRINT attribute is present but is not the last one or does not match.
    #[error("the FINGERPRINT attribute is not last or does not match the message")]
    BadFingerprint,
    /// Encoding the answer failed; a bug, as every input to the encoder is checked.
    #[error("cannot encode the Binding response: {0}")]
    Encode(String),
}

impl StunError {
    /// The `reason` label of `bootstrap_stun_refused_total` for this error.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Truncated { .. } | Self::NotStun | Self::LengthMismatch { .. } => "not_stun",
            Self::NotBindingRequest { .. } => "not_binding_request",
            Self::Malformed(_) | Self::BadFingerprint => "malformed",
            Self::Encode(_) => "internal",
        }
    }
}

/// The answer to `request`, a datagram received from `from`: a Binding success response
/// with the request's transaction id, an XOR-MAPPED-ADDRESS of `from` (an IPv4-mapped IPv6
/// source, as a dual-stack socket reports IPv4 peers, is answered as IPv4), SOFTWARE, and a
/// FINGERPRINT if the request had one.
///
/// Anything but a well-formed Binding request is an error; nothing panics, whatever the
/// bytes.
///
/// ```
/// use bootstrap_server::stun::{StunError, answer};
///
/// let from = "203.0.113.7:40000".parse().unwrap();
/// // A Binding request: type 0x0001, no attributes, the magic cookie, a transaction id.
/// let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
/// request.extend_from_slice(&[7; 12]);
/// let response = answer(&request, from).unwrap();
/// assert_eq!(&response[..2], &[0x01, 0x01]); // Binding success
/// assert_eq!(&response[8..20], &[7; 12]); // the same transaction id
///
/// request[0..2].copy_from_slice(&[0x01, 0x01]); // a Binding success is not answered
/// assert!(matches!(answer(&request, from), Err(StunError::NotBindingRequest { .. })));
/// ```
pub fn answer(request: &[u8], from: SocketAddr) -> Result<Vec<u8>, StunError> {
    let len = request.len();
    if len > MAX_REQUEST {
        return Err(StunError::Oversized { len });
    }
    if len < MESSAGE_HEADER_SIZE {
        return Err(StunError::Truncated { len });
    }
    // rtc-stun's decoder ignores the two leading bits and accepts trailing bytes: check the
    // header here.
    let cookie = u32::from_be_bytes([request[4], request[5], request[6], request[7]]);
    if request[0] & 0xc0 != 0 || cookie != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    let declared = usize::from(u16::from_be_bytes([request[2], request[3]]));
    let actual = len - MESSAGE_HEADER_SIZE;
    if declared != actual || declared % 4 != 0 {
        return Err(StunError::LengthMismatch { declared, actual });
    }
    let message_type = u16::from_be_bytes([request[0], request[1]]);
    if message_type != BINDING_REQUEST.value() {
        return Err(StunError::NotBindingRequest { message_type });
    }
    let mut decoded = Message::new();
    decoded
        .unmarshal_binary(request)
        .map_err(|e| StunError::Malformed(e.to_string()))?;
    let fingerprinted = decoded.contains(ATTR_FINGERPRINT);
    if fingerprinted {
        let last = decoded.attributes.0.last().map(|a| a.typ);
        if last != Some(ATTR_FINGERPRINT) || FINGERPRINT.check(&decoded).is_err() {
            return Err(StunError::BadFingerprint);
        }
    }

    let mapped = XorMappedAddress {
        ip: from.ip().to_canonical(),
        port: from.port(),
    };
    let software = TextAttribute::new(ATTR_SOFTWARE, SOFTWARE.to_owned());
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_SUCCESS),
        Box::new(decoded.transaction_id),
        Box::new(mapped),
        Box::new(software),
    ];
    if fingerprinted {
        setters.push(Box::new(FINGERPRINT));
    }
    let mut response = Message::new();
    response
        .build(&setters)
        .map_err(|e| StunError::Encode(e.to_string()))?;
    Ok(response.raw)
}

/// Answers Binding requests on `socket` until `shutdown` is cancelled.
pub(crate) async fn serve(socket: UdpSocket, shared: Arc<Shared>, shutdown: CancellationToken) {
    let limits = Limits::new(&shared.config);
    let metrics = &shared.metrics;
    let refuse = |reason: &'static str| {
        metrics.stun_refused.get_or_create(&Reason { reason }).inc();
    };
    // The only buffer: one byte more than any answered request, so a larger datagram shows
    // (the kernel truncates it to the buffer) and is refused.
    let mut buf = vec![0; MAX_REQUEST + 1];
    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, from) = match received {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!("STUN receive failed: {e}");
                // Yield, so that an error that repeats cannot starve the other tasks.
                tokio::task::yield_now().await;
                continue;
            }
        };
        let response = match answer(&buf[..len], from) {
            Ok(response) => response,
            Err(e) => {
                tracing::trace!(%from, "STUN datagram not answered: {e}");
                refuse(e.reason());
                continue;
            }
        };
        if let Err(reason) = limits.check(from.ip()) {
            tracing::trace!(%from, "STUN request not answered: {reason}");
            refuse(reason);
            continue;
        }
        // Never wait on a full send buffer: UDP may drop, and the client retransmits.
        match socket.try_send_to(&response, from) {
            Ok(_) => {
                metrics.stun_answers.inc();
            }
            Err(e) => {
                tracing::debug!(%from, "STUN answer not sent: {e}");
                refuse("send_failed");
            }
        }
    }
    tracing::debug!("STUN responder stopped");
}

/// The responder's two budgets: all answers, and answers to one source.
#[derive(Debug)]
struct Limits {
    total: DefaultDirectRateLimiter,
    per_source: RateLimiter<IpAddr, SourceBuckets, DefaultClock>,
}

impl Limits {
    fn new(config: &crate::Config) -> Self {
        let nonzero = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let total = Quota::per_second(nonzero(config.stun_answers_per_second))
            .allow_burst(nonzero(config.stun_answer_burst));
        let per_source = Quota::per_second(nonzero(config.stun_answers_per_source))
            .allow_burst(nonzero(config.stun_source_burst));
        Self {
            total: RateLimiter::direct(total),
            per_source: RateLimiter::new(per_source, SourceBuckets::new(), DefaultClock::default()),
        }
    }

    /// Takes one answer from both budgets, or says which one is spent. The source's budget
    /// is checked first, so one busy source does not spend everyone's.
    fn check(&self, source: IpAddr) -> Result<(), &'static str> {
        if self.per_source.check_key(&source).is_err() {
            return Err("rate_limited_source");
        }
        if self.total.check().is_err() {
            return Err("rate_limited_total");
        }
        Ok(())
    }
}

/// Per-source rate-limit state in a fixed number of GCRA cells: a governor state store keyed
/// by source address that never grows.
#[derive(Debug)]
struct SourceBuckets(Box<[InMemoryState]>);

impl SourceBuckets {
    fn new() -> Self {
        Self(
            (0..SOURCE_BUCKETS)
                .map(|_| InMemoryState::default())
                .collect(),
        )
    }
}

impl StateStore for SourceBuckets {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0[bucket(*key)].measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// The bucket of a source: its IPv4 address or its IPv6 /64, Fibonacci-hashed. Deterministic
/// on purpose: a spoofer can aim at a victim's bucket, but could as well spend the total
/// budget, and tests can rely on which sources share a bucket.
fn bucket(ip: IpAddr) -> usize {
    let key = match ip.to_canonical() {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        // The /64 prefix: the upper half of the address.
        IpAddr::V6(v6) => (v6.to_bits() >> 64) as u64,
    };
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BUCKET_BITS)) as usize
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;
    use rtc_stun::message::{CLASS_REQUEST, Getter, METHOD_ALLOCATE, MessageType, TransactionId};

    use super::*;

    /// A Binding request with a fresh transaction id and `extra` attributes.
    fn request(extra: &[Box<dyn Setter>]) -> (Vec<u8>, TransactionId) {
        let id = TransactionId::new();
        let mut m = Message::new();
        m.build(&[Box::new(BINDING_REQUEST), Box::new(id)]).unwrap();
        for setter in extra {
            setter.add_to(&mut m).unwrap();
        }
        (m.raw, id)
    }

    fn decode(bytes: &[u8]) -> Message {
        let mut m = Message::new();
        m.unmarshal_binary(bytes).unwrap();
        m
    }

    fn mapped(m: &Message) -> SocketAddr {
        let mut a = XorMappedAddress::default();
        a.get_from(m).unwrap();
        SocketAddr::new(a.ip, a.port)
    }

    #[test]
    fn a_binding_request_gets_its_source_address_back() {
        for from in ["203.0.113.7:40000", "[2001:db8::1]:3478"] {
            let from: SocketAddr = from.parse().unwrap();
            let (req, id) = request(&[]);
            let response = decode(&answer(&req, from).unwrap());
            assert_eq!(response.typ, BINDING_SUCCESS);
            assert_eq!(response.transaction_id, id);
            assert_eq!(mapped(&response), from);
            let software = TextAttribute::get_from_as(&response, ATTR_SOFTWARE).unwrap();
            assert_eq!(software.text, SOFTWARE);
            assert!(!response.contains(ATTR_FINGERPRINT), "not asked for");
        }
    }

    #[test]
    fn an_ipv4_mapped_source_is_answered_as_ipv4() {
        let v4 = Ipv4Addr::new(198, 51, 100, 9);
        let from = SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), 5000);
        let (req, _) = request(&[]);
        let response = decode(&answer(&req, from).unwrap());
        assert_eq!(mapped(&response), SocketAddr::new(IpAddr::V4(v4), 5000));
    }

    #[test]
    fn a_fingerprint_is_checked_and_mirrored() {
        let from: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let (req, _) = request(&[Box::new(FINGERPRINT)]);
        let response = decode(&answer(&req, from).unwrap());
        FINGERPRINT.check(&response).unwrap();

        let mut bad = req.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(answer(&bad, from), Err(StunError::BadFingerprint));
    }

    #[test]
    fn everything_but_a_binding_request_is_refused_with_its_reason() {
        let from: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let (req, _) = request(&[]);

        let response = answer(&req, from).unwrap();
        assert!(matches!(
            answer(&response, from),
            Err(StunError::NotBindingRequest {
                message_type: 0x0101
            })
        ));
        let mut allocate = Message::new();
        let allocate_type = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
        allocate
            .build(&[Box::new(allocate_type), Box::new(TransactionId::new())])
            .unwrap();
        assert!(matches!(
            answer(&allocate.raw, from),
            Err(StunError::NotBindingRequest {
                message_type: 0x0003
            })
        ));
        assert_eq!(
            answer(&req[..19], from),
            Err(StunError::Truncated { len: 19 })
        );
        assert_eq!(
            answer(&vec![0; MAX_REQUEST + 1], from),
            Err(StunError::Oversized {
                len: MAX_REQUEST + 1
            })
        );
        let mut no_cookie = req.clone();
        no_cookie[4] ^= 1;
        assert_eq!(answer(&no_cookie, from), Err(StunError::NotStun));
        let mut leading_bits = req.clone();
        leading_bits[0] |= 0x40;
        assert_eq!(answer(&leading_bits, from), Err(StunError::NotStun));
        let mut trailing = req.clone();
        trailing.extend_from_slice(&[0; 4]);
        assert_eq!(
            answer(&trailing, from),
            Err(StunError::LengthMismatch {
                declared: 0,
                actual: 4
            })
        );
        // An attribute header that claims more value bytes than the message holds.
        let mut cut = req.clone();
        cut[3] = 4;
        cut.extend_from_slice(&[0x80, 0x22, 0x00, 0x08]);
        assert!(matches!(answer(&cut, from), Err(StunError::Malformed(_))));
    }

    #[test]
    fn sources_share_buckets_by_ipv4_address_and_ipv6_prefix() {
        let a = IpAddr::V6("2001:db8:1:2::1".parse::<Ipv6Addr>().unwrap());
        let b = IpAddr::V6("2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap());
        let c = IpAddr::V6("2001:db8:1:3::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(bucket(a), bucket(b), "one /64, one bucket");
        assert_ne!(bucket(a), bucket(c));
        let one = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        assert_eq!(bucket(one), bucket(mapped));
        // The integration tests rely on these two loopback sources having separate budgets.
        assert_ne!(bucket(one), bucket(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    }

    #[test]
    fn a_source_past_its_burst_is_refused_and_others_are_not() {
        // 1 answer/s overall, so that no token comes back while the test runs.
        let config = crate::Config::default()
            .with_stun_answers_per_source(1)
            .with_stun_source_burst(3)
            .with_stun_answers_per_second(1)
            .with_stun_answer_burst(5);
        let limits = Limits::new(&config);
        let one = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let two = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert_ne!(bucket(one), bucket(two));
        for _ in 0..3 {
            limits.check(one).unwrap();
        }
        assert_eq!(limits.check(one), Err("rate_limited_source"));
        limits.check(two).unwrap();
        limits.check(two).unwrap();
        assert_eq!(limits.check(two), Err("rate_limited_total"), "5 in all");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let _ = answer(&bytes, "192.0.2.1:9".parse().unwrap());
        }

        #[test]
        fn a_request_with_any_well_formed_attributes_is_answered(
            attributes in proptest::collection::vec(
                (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)),
                0..8,
            ),
            v6 in any::<bool>(),
        ) {
            // Unknown attributes are ignored; only a FINGERPRINT is checked.
            let mut body = Vec::new();
            for (typ, value) in &attributes {
                let typ = if *typ == ATTR_FINGERPRINT.0 { 0x8022 } else { *typ };
                body.extend_from_slice(&typ.to_be_bytes());
                body.extend_from_slice(&(value.len() as u16).to_be_bytes());
                body.extend_from_slice(value);
                body.resize(body.len().next_multiple_of(4), 0);
            }
            let mut request = vec![0x00, 0x01];
            request.extend_from_slice(&(body.len() as u16).to_be_bytes());
            request.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            request.extend_from_slice(&[1; 12]);
            request.extend_from_slice(&body);
            let from: SocketAddr = if v6 {
                "[2001:db8::2]:7".parse().unwrap()
            } else {
                "192.0.2.1:7".parse().unwrap()
            };
            let response = decode(&answer(&request, from).unwrap());
            prop_assert_eq!(mapped(&response), from);
            prop_assert_eq!(response.transaction_id.0, [1; 12]);
        }
    }
}
