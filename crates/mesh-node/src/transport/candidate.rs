//! How a link's packets travel: the ICE candidate pair a transport selected for it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// The type of an ICE candidate (RFC 8445 §5.1.1): where its address comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateKind {
    /// An address of a local interface: a direct path, no NAT in between (or one that
    /// forwards the port).
    Host,
    /// Server-reflexive: the address a NAT maps the local one to, learned from a STUN
    /// server.
    Srflx,
    /// Peer-reflexive: an address learned from a connectivity check, not from signaling.
    Prflx,
    /// An address on a TURN server, which relays every packet.
    Relay,
    /// Not known (the transport does not say, or names a type this crate does not know).
    #[default]
    Unknown,
}

impl CandidateKind {
    /// The name ICE uses: `host`, `srflx`, `prflx`, `relay`, or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateKind::Host => "host",
            CandidateKind::Srflx => "srflx",
            CandidateKind::Prflx => "prflx",
            CandidateKind::Relay => "relay",
            CandidateKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport protocol of an ICE candidate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateProtocol {
    /// UDP.
    Udp,
    /// TCP: ICE-TCP (RFC 6544), or for a local relay candidate, TURN over TCP.
    Tcp,
    /// For a local relay candidate: TURN over TLS (`turns:`).
    Tls,
    /// Not known.
    #[default]
    Unknown,
}

impl CandidateProtocol {
    /// `udp`, `tcp`, `tls`, or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateProtocol::Udp => "udp",
            CandidateProtocol::Tcp => "tcp",
            CandidateProtocol::Tls => "tls",
            CandidateProtocol::Unknown => "unknown",
        }
    }
}

impl fmt::Display for CandidateProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One end of a candidate pair: its type and protocol. Displays as `host/udp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Where the address comes from.
    pub kind: CandidateKind,
    /// The protocol of the candidate's address; for this node's own relay candidate, how
    /// the node reaches its TURN server instead: `udp`, `tcp` or `tls` (the relayed address
    /// itself is UDP in every case). A remote relay candidate reads `udp`: how the peer
    /// reaches its TURN server is not signaled.
    pub protocol: CandidateProtocol,
}

impl Candidate {
    /// Both type and protocol unknown (`unknown/unknown`).
    pub const UNKNOWN: Candidate = Candidate {
        kind: CandidateKind::Unknown,
        protocol: CandidateProtocol::Unknown,
    };
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.protocol)
    }
}

/// The candidate pair ICE selected for a link: the local and the remote end. Displays as
/// `<local> <remote>`, e.g. `srflx/udp srflx/udp`; the default is unknown on both ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CandidatePair {
    /// This node's end.
    pub local: Candidate,
    /// The neighbour's end.
    pub remote: Candidate,
}

impl fmt::Display for CandidatePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.local, self.remote)
    }
}

/// What [`crate::transport::Transport::candidate_pairs`] returns: a future that reads the
/// pairs, independent of the transport handle, so the caller can run it on a task of its own.
pub type CandidatePairsFuture = Pin<Box<dyn Future<Output = Vec<Option<CandidatePair>>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_display_as_type_slash_protocol() {
        let pair = CandidatePair {
            local: Candidate {
                kind: CandidateKind::Srflx,
                protocol: CandidateProtocol::Udp,
            },
            remote: Candidate {
                kind: CandidateKind::Relay,
                protocol: CandidateProtocol::Tcp,
            },
        };
        assert_eq!(pair.to_string(), "srflx/udp relay/tcp");
        assert_eq!(
            CandidatePair::default().to_string(),
            "unknown/unknown unknown/unknown"
        );
        assert_eq!(Candidate::UNKNOWN, Candidate::default());
        let names: Vec<_> = [
            CandidateKind::Host,
            CandidateKind::Srflx,
            CandidateKind::Prflx,
            CandidateKind::Relay,
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        assert_eq!(names, ["host", "srflx", "prflx", "relay"]);
    }
}
