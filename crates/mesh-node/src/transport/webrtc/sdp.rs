//! What a session changes in the SDPs it signals and applies: the `a=max-message-size`
//! attribute (RFC 8841 §6), and the remote's `a=candidate` lines ([`take_candidates`]).
//!
//! The attribute says how large a message the *announcing* side accepts. webrtc-rs 0.21.1
//! reads it differently: it takes the smaller of its own configured size and the remote's
//! announced one as the limit of **both** directions, and sizes its receive buffer by it
//! (`rtc-0.21.1/src/peer_connection/transport/sctp/mod.rs`, `SctpTransport::start`). A
//! received message over that buffer is dropped inside the SCTP stack with nothing but a
//! log line (`too short buffer`), so an oversized message never reached the transport and
//! could not cost its sender the link (protocol.md §10.1).
//!
//! The session therefore configures webrtc-rs with its ceiling
//! ([`Config::MAX_READ_SIZE`]), and:
//! - announces [`Config::MAX_MESSAGE_SIZE`] in the SDP it signals ([`announce`]);
//! - reads the remote's announced size ([`remote_limit`]) as the limit of what it sends,
//!   and hands webrtc-rs the remote SDP with the ceiling in its place ([`announce`] again),
//!   so that the receive buffer is the ceiling whatever the remote announced.

use super::Config;

/// The attribute, as an SDP line starts with it.
const PREFIX: &str = "a=max-message-size:";

/// `sdp` with every `a=max-message-size` line set to `size`, and one added at the end of
/// the application media section if it had none. An SDP without an application section
/// is returned as it is (webrtc-rs refuses it, or starts no SCTP transport, either way).
pub(super) fn announce(sdp: &str, size: usize) -> String {
    let newline = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let attribute = format!("{PREFIX}{size}");
    let mut lines: Vec<&str> = sdp.split(newline).collect();
    let mut found = false;
    for line in &mut lines {
        if line.starts_with(PREFIX) {
            *line = &attribute;
            found = true;
        }
    }
    if !found {
        let Some(start) = lines.iter().position(|l| l.starts_with("m=application")) else {
            return sdp.to_owned();
        };
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.starts_with("m=") || l.is_empty())
            .map_or(lines.len(), |i| start + 1 + i);
        lines.insert(end, &attribute);
    }
    lines.join(newline)
}

/// The value of an `a=candidate` line: the attribute as a `Candidate` signal carries it.
const CANDIDATE: &str = "a=candidate:";

/// `sdp` without its `a=candidate` lines, and those lines' values (`candidate:…`, without
/// `a=`), in order.
///
/// A peer that does not trickle puts its candidates in its offer or answer (protocol.md
/// §10.6), and webrtc-rs 0.21.1 refuses a whole remote description if one of its
/// candidates does not parse (`extract_ice_details`: an FQDN address, an unknown type), where
/// the same candidate in a `Candidate` signal is skipped with a log line. The session applies
/// the description without them, then each one as if it had been trickled, so that both ways
/// accept the same candidates.
pub(super) fn take_candidates(sdp: &str) -> (String, Vec<String>) {
    let newline = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut candidates = Vec::new();
    let mut kept = Vec::new();
    for line in sdp.split(newline) {
        match line.strip_prefix("a=") {
            Some(value) if line.starts_with(CANDIDATE) => candidates.push(value.to_owned()),
            _ => kept.push(line),
        }
    }
    (kept.join(newline), candidates)
}

/// The largest message the remote of `sdp` may be sent: what it announced
/// (`a=max-message-size`), 65536 when it announced nothing or nothing readable (RFC 8841
/// §6.1), no limit of its own for `0`; and never more than [`Config::MAX_MESSAGE_SIZE`],
/// the most any frame needs.
pub(super) fn remote_limit(sdp: &str) -> usize {
    const RFC_DEFAULT: usize = 65_536;
    let announced = sdp
        .lines()
        .find_map(|line| line.trim_end().strip_prefix(PREFIX))
        .map_or(RFC_DEFAULT, |value| {
            value.trim().parse::<usize>().unwrap_or(RFC_DEFAULT)
        });
    match announced {
        0 => Config::MAX_MESSAGE_SIZE,
        n => n.min(Config::MAX_MESSAGE_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of webrtc-rs 0.21.1's offers (one application section, CRLF lines).
    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
        c=IN IP4 0.0.0.0\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\n\
        a=sctp-port:5000\r\na=max-message-size:262144\r\na=ice-ufrag:abc\r\n";

    #[test]
    fn an_announced_size_is_replaced_and_nothing_else_changes() {
        let out = announce(OFFER, 65_536);
        assert_eq!(
            out,
            OFFER.replace("max-message-size:262144", "max-message-size:65536")
        );
        assert_eq!(remote_limit(&out), 65_536);
    }

    #[test]
    fn a_missing_attribute_is_added_to_the_application_section() {
        let without = OFFER.replace("a=max-message-size:262144\r\n", "");
        let sdp = format!("{without}m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n");
        let out = announce(&sdp, 262_144);
        let lines: Vec<&str> = out.split("\r\n").collect();
        let at = lines
            .iter()
            .position(|l| *l == "a=max-message-size:262144")
            .expect("added");
        assert_eq!(lines[at - 1], "a=ice-ufrag:abc", "last of its section");
        assert_eq!(lines[at + 1], "m=audio 9 UDP/TLS/RTP/SAVPF 0");
        assert!(out.ends_with("a=mid:1\r\n"), "the rest unchanged: {out}");
        // At the very end of the SDP too, and with bare LF line ends.
        let lf = without.replace("\r\n", "\n");
        assert_eq!(
            announce(&lf, 65_536),
            format!("{lf}a=max-message-size:65536\n")
        );
    }

    #[test]
    fn an_sdp_without_an_application_section_is_left_alone() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n";
        assert_eq!(announce(sdp, 65_536), sdp);
    }

    #[test]
    fn candidate_lines_are_taken_out_in_order_and_nothing_else_changes() {
        let first = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host";
        let second = "candidate:2 1 udp 2130706431 unresolvable.example 9 typ host";
        let with = format!("{OFFER}a={first}\r\na={second}\r\na=end-of-candidates\r\n");
        let (description, candidates) = take_candidates(&with);
        assert_eq!(description, format!("{OFFER}a=end-of-candidates\r\n"));
        assert_eq!(candidates, [first, second]);
        // Bare LF line ends, and an SDP without candidates.
        let lf = with.replace("\r\n", "\n");
        assert_eq!(take_candidates(&lf).1, [first, second]);
        assert_eq!(take_candidates(OFFER), (OFFER.to_owned(), Vec::new()));
    }

    #[test]
    fn the_remote_limit_follows_rfc_8841_and_the_frame_size() {
        let with = |value: &str| OFFER.replace("262144", value);
        assert_eq!(remote_limit(&with("16384")), 16_384, "smaller is kept");
        assert_eq!(
            remote_limit(&with("262144")),
            65_536,
            "larger: a frame's most"
        );
        assert_eq!(remote_limit(&with("0")), 65_536, "no limit: a frame's most");
        assert_eq!(
            remote_limit(&with("lots")),
            65_536,
            "unreadable: the default"
        );
        let without = OFFER.replace("a=max-message-size:262144\r\n", "");
        assert_eq!(remote_limit(&without), 65_536, "absent: the default");
    }
}
