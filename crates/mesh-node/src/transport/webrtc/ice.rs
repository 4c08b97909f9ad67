//! STUN and TURN servers: their URLs checked the way webrtc-rs reads them, the servers a new
//! PeerConnection uses, and the candidate pair ICE selected for a link.

use std::net::SocketAddr;
use std::sync::Arc;

use rtc::ice::url::{ProtoType, SchemeType, Url};
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateType, RTCIceProtocol};

use crate::transport::{Candidate, CandidateKind, CandidatePair, CandidateProtocol};

/// One STUN or TURN server.
///
/// What a PeerConnection gathers with each kind of URL (measured against coturn:
/// `tests/webrtc_turn_relay_candidates.rs`):
///
/// | URL | gathers |
/// |---|---|
/// | `stun:host:port` | a server-reflexive candidate per local UDP socket |
/// | `turn:host:port` or `?transport=udp` | a relay candidate (UDP relay, UDP to the server) |
/// | `turn:…?transport=tcp` | a relay candidate (UDP relay, TCP to the server) |
/// | `turns:host:port` | a relay candidate (UDP relay, TLS over TCP to the server) |
/// | `stuns:…`, `turns:…?transport=udp` | nothing: not supported |
///
/// webrtc-rs 0.21.1 speaks TURN over UDP only (`turn_relayer.rs`, `gather`: "Skipping
/// unsupported non-UDP TURN url", "Skipping unsupported secure TURN url"), so the transport
/// bridges TCP and TLS TURN URLs (`turn_stream.rs`). It skips `stuns:` too
/// (`stun_gatherer.rs`); TURN over DTLS has no bridge. Such URLs are accepted, with
/// [`IceServer::unsupported_urls`] saying why they will not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…` URLs of one server.
    pub urls: Vec<String>,
    /// The TURN username; empty for STUN.
    pub username: String,
    /// The TURN credential; empty for STUN.
    pub credential: String,
}

impl IceServer {
    /// A STUN server, e.g. `stun:stun.example.org:3478`.
    pub fn stun(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            username: String::new(),
            credential: String::new(),
        }
    }

    /// A TURN server with its long-term credentials.
    pub fn turn(
        url: impl Into<String>,
        username: impl Into<String>,
        credential: impl Into<String>,
    ) -> Self {
        Self {
            urls: vec![url.into()],
            username: username.into(),
            credential: credential.into(),
        }
    }

    /// Checks every URL as webrtc-rs will read it (RFC 7064 / 7065 syntax: `stun:`,
    /// `stuns:`, `turn:`, `turns:`, host, optional port, for TURN an optional
    /// `?transport=udp|tcp`), and that a server with a `turn:`/`turns:` URL has a username
    /// and a credential. webrtc-rs itself would refuse such a configuration only when a
    /// connection is created, or skip the URL with a log line.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.urls.is_empty() {
            return Err(crate::Error::IceServer {
                url: String::new(),
                why: "an ICE server needs at least one URL".to_owned(),
                source: None,
            });
        }
        for raw in &self.urls {
            let url = parse(raw)?;
            if is_turn(&url) && (self.username.is_empty() || self.credential.is_empty()) {
                return Err(crate::Error::IceServer {
                    url: raw.clone(),
                    why: "a TURN server needs a username and a credential".to_owned(),
                    source: None,
                });
            }
        }
        Ok(())
    }

    /// The URLs that parse but are never used, each with the reason: `stuns:` and TURN
    /// over DTLS (`turns:…?transport=udp`) (see [`IceServer`]).
    pub fn unsupported_urls(&self) -> Vec<(String, &'static str)> {
        self.urls
            .iter()
            .filter_map(|raw| {
                let url = Url::parse_url(raw).ok()?;
                unsupported(&url).map(|why| (raw.clone(), why))
            })
            .collect()
    }

    /// Whether one of the URLs is a STUN URL that webrtc-rs uses (`stun:`; it skips
    /// `stuns:`, which therefore does not replace the bootstrap server's STUN).
    pub(super) fn has_stun(&self) -> bool {
        self.urls.iter().any(|raw| {
            Url::parse_url(raw)
                .is_ok_and(|url| url.scheme == SchemeType::Stun && unsupported(&url).is_none())
        })
    }
}

/// Parses one STUN or TURN URL as webrtc-rs does.
pub(crate) fn parse(raw: &str) -> Result<Url, crate::Error> {
    Url::parse_url(raw).map_err(|err| crate::Error::IceServer {
        url: raw.to_owned(),
        why: format!(
            "not a STUN or TURN URL ({err}); expected e.g. stun:stun.example.org:3478 or \
             turn:turn.example.org:3478?transport=udp"
        ),
        source: Some(err),
    })
}

/// Whether `url` is a TURN URL (`turn:` or `turns:`).
pub(crate) fn is_turn(url: &Url) -> bool {
    matches!(url.scheme, SchemeType::Turn | SchemeType::Turns)
}

/// Why `url` will not be used, if it will not.
fn unsupported(url: &Url) -> Option<&'static str> {
    match (url.scheme, url.proto) {
        (SchemeType::Stuns, _) => {
            Some("webrtc-rs 0.21.1 does not gather over STUN with TLS (stuns:); it skips the URL")
        }
        (SchemeType::Turns, ProtoType::Udp) => Some(
            "TURN over DTLS (turns:…?transport=udp) is not supported: use turns: (TLS over \
             TCP) or turn:…?transport=udp",
        ),
        _ => None,
    }
}

/// The ICE servers of a new PeerConnection: `configured`, plus the bootstrap server's STUN
/// responder (`server_stun`) if none of `configured` is a STUN server.
pub(super) fn effective_servers(
    configured: &[IceServer],
    server_stun: Option<&str>,
) -> Vec<IceServer> {
    let mut servers = configured.to_vec();
    if let Some(url) = server_stun
        && !configured.iter().any(IceServer::has_stun)
    {
        servers.push(IceServer::stun(url));
    }
    servers
}

/// The candidate pair ICE selected for `pc`, if it has selected one.
///
/// A remote candidate that ICE first learned from the peer's connectivity check is
/// peer-reflexive; when the peer also signaled a candidate with the same address, port and
/// protocol, the pair is reported with that candidate's type, which says what the address
/// is (with signaling relayed through the mesh, the peer's check often beats its signaled
/// candidate, so the prflx would otherwise hide a host, srflx or relay address).
///
/// A local relay candidate reads how the node reaches its TURN server: `relay_protocol`
/// of its (relayed) address, `relay/tcp` or `relay/tls` through a bridge, else `relay/udp`.
pub(super) async fn selected_pair(
    pc: Arc<dyn PeerConnection>,
    relay_protocol: impl Fn(SocketAddr) -> CandidateProtocol,
) -> Option<CandidatePair> {
    let ice = pc.sctp().await?.transport().ice_transport();
    let pair = ice.get_selected_candidate_pair().await.ok()??;
    let (local, remote) = (pair.local(), pair.remote());
    let mut remote_kind = kind(remote.typ);
    if remote.typ == RTCIceCandidateType::Prflx
        && let Ok(signaled) = ice.get_remote_candidates().await
        && let Some(same) = signaled.iter().find(|c| {
            c.typ != RTCIceCandidateType::Prflx
                && c.address == remote.address
                && c.port == remote.port
                && c.protocol == remote.protocol
        })
    {
        remote_kind = kind(same.typ);
        tracing::trace!("the selected remote prflx candidate was signaled as {remote_kind}");
    }
    let local_protocol = match local.typ {
        RTCIceCandidateType::Relay => local.address.parse().map_or(CandidateProtocol::Udp, |ip| {
            relay_protocol(SocketAddr::new(ip, local.port))
        }),
        _ => protocol(local.protocol),
    };
    Some(CandidatePair {
        local: Candidate {
            kind: kind(local.typ),
            protocol: local_protocol,
        },
        remote: Candidate {
            kind: remote_kind,
            protocol: protocol(remote.protocol),
        },
    })
}

fn kind(typ: RTCIceCandidateType) -> CandidateKind {
    match typ {
        RTCIceCandidateType::Host => CandidateKind::Host,
        RTCIceCandidateType::Srflx => CandidateKind::Srflx,
        RTCIceCandidateType::Prflx => CandidateKind::Prflx,
        RTCIceCandidateType::Relay => CandidateKind::Relay,
        _ => CandidateKind::Unknown,
    }
}

fn protocol(protocol: RTCIceProtocol) -> CandidateProtocol {
    match protocol {
        RTCIceProtocol::Udp => CandidateProtocol::Udp,
        RTCIceProtocol::Tcp => CandidateProtocol::Tcp,
        _ => CandidateProtocol::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(server: IceServer) -> String {
        match server.validate() {
            Err(crate::Error::IceServer { why, .. }) => why,
            other => panic!("{server:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn relay_only_needs_a_turn_server() {
        use super::super::Config;
        let stun_only = Config::new()
            .with_ice_servers(vec![IceServer::stun("stun:127.0.0.1:3478")])
            .with_relay_only(true);
        assert!(matches!(
            stun_only.validate(),
            Err(crate::Error::IceServer { .. })
        ));
        let with_turn = Config::new()
            .with_ice_servers(vec![IceServer::turn("turn:127.0.0.1:3479", "u", "p")])
            .with_relay_only(true);
        assert!(with_turn.validate().is_ok());
        assert!(Config::new().validate().is_ok());
    }

    #[test]
    fn urls_are_checked_as_webrtc_rs_reads_them() {
        for url in [
            "stun:stun.example.org",
            "stun:127.0.0.1:3478",
            "stun:[::1]:3478",
            "stuns:stun.example.org:5349",
        ] {
            IceServer::stun(url).validate().unwrap();
        }
        for url in [
            "turn:turn.example.org",
            "turn:192.0.2.1:3478?transport=udp",
            "turn:192.0.2.1:3478?transport=tcp",
            "turns:turn.example.org:5349",
        ] {
            IceServer::turn(url, "u", "p").validate().unwrap();
        }
        for url in [
            "stun.example.org:3478",
            "http://stun.example.org",
            "stun://stun.example.org:3478",
            "stun:stun.example.org:3478?transport=udp",
            "turn:192.0.2.1:3478?transport=sctp",
            "turn:192.0.2.1:99999",
            "stun:",
        ] {
            let why = refused(IceServer::turn(url, "u", "p"));
            assert!(why.contains("not a STUN or TURN URL"), "{url}: {why}");
        }
        let why = refused(IceServer::turn("turn:192.0.2.1", "", "p"));
        assert!(why.contains("username and a credential"), "{why}");
        refused(IceServer::turn("turn:192.0.2.1", "u", ""));
        refused(IceServer {
            urls: Vec::new(),
            username: String::new(),
            credential: String::new(),
        });
    }

    #[test]
    fn only_stuns_and_dtls_urls_are_flagged_as_unused() {
        let server = IceServer {
            urls: vec![
                "turn:192.0.2.1:3478?transport=udp".into(),
                "turn:192.0.2.1:3478".into(),
                "turn:192.0.2.1:3478?transport=tcp".into(),
                "turns:192.0.2.1:5349".into(),
                "turns:192.0.2.1:5349?transport=udp".into(),
                "stun:192.0.2.1".into(),
                "stuns:192.0.2.1".into(),
            ],
            username: "u".into(),
            credential: "p".into(),
        };
        let flagged: Vec<_> = server
            .unsupported_urls()
            .into_iter()
            .map(|(url, _)| url)
            .collect();
        assert_eq!(
            flagged,
            ["turns:192.0.2.1:5349?transport=udp", "stuns:192.0.2.1"]
        );
    }

    #[test]
    fn the_server_stun_is_added_only_without_a_stun_server_of_ones_own() {
        let door = Some("stun:door.example:3478");
        let turn = IceServer::turn("turn:192.0.2.1", "u", "p");
        let stun = IceServer::stun("stun:192.0.2.2");
        assert_eq!(
            effective_servers(&[], door),
            [IceServer::stun("stun:door.example:3478")]
        );
        assert_eq!(
            effective_servers(std::slice::from_ref(&turn), door),
            [turn.clone(), IceServer::stun("stun:door.example:3478")]
        );
        assert_eq!(
            effective_servers(&[turn.clone(), stun.clone()], door),
            [turn.clone(), stun.clone()]
        );
        assert_eq!(effective_servers(std::slice::from_ref(&turn), None), [turn]);
    }
}
