//! Text the driver rewrites or derives: the SDP it signals, the STUN URL of a server. Pure
//! functions, built and tested on every target.

/// The largest message sent or announced (protocol.md §10.1).
pub(crate) const MAX_MESSAGE_SIZE: usize = 65536;

/// The SDP as signaled: browsers announce their own `a=max-message-size` (Chromium 262144);
/// the protocol's limit is 65536 both ways, and the signaled SDP says so (protocol.md
/// §10.1). Only the copy sent to the peer changes: the browser keeps its own description.
pub(crate) fn munge_max_message_size(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("a=max-message-size:") {
            let end = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
            out.push_str("a=max-message-size:");
            out.push_str(&MAX_MESSAGE_SIZE.to_string());
            out.push_str(end);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The STUN URL of a server's responder: `stun:<host of url>:<port>`.
pub(crate) fn stun_url(server: &str, port: u16) -> Option<String> {
    let rest = server.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        format!("[{}]", v6.split(']').next()?)
    } else {
        authority.split(':').next()?.to_owned()
    };
    (!host.is_empty()).then(|| format!("stun:{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signaled_sdp_announces_the_protocols_message_size() {
        let sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
                   a=sctp-port:5000\r\na=max-message-size:262144\r\n";
        let out = munge_max_message_size(sdp);
        assert!(out.contains("a=max-message-size:65536\r\n"), "{out}");
        assert!(!out.contains("262144"));
        assert_eq!(out.lines().count(), sdp.lines().count());
        // Without the attribute (65536 by RFC 8841), nothing changes.
        let plain = "v=0\r\na=sctp-port:5000\r\n";
        assert_eq!(munge_max_message_size(plain), plain);
        assert_eq!(MAX_MESSAGE_SIZE, mesh_proto_limit());
    }

    #[test]
    fn the_stun_url_is_the_servers_host_with_the_announced_port() {
        assert_eq!(
            stun_url("ws://127.0.0.1:8080/ws", 3478).as_deref(),
            Some("stun:127.0.0.1:3478")
        );
        assert_eq!(
            stun_url("wss://user@door.example:443/ws", 3478).as_deref(),
            Some("stun:door.example:3478")
        );
        assert_eq!(
            stun_url("ws://[::1]:8080/ws", 9).as_deref(),
            Some("stun:[::1]:9")
        );
        assert_eq!(stun_url("not a url", 9), None);
    }

    /// The protocol's frame limit, as mesh-proto has it (a dev-dependency on every target).
    fn mesh_proto_limit() -> usize {
        mesh_proto::codec::MAX_FRAME_SIZE
    }
}
