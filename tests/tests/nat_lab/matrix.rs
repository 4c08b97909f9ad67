//! The result matrix: the candidate pair each link selected, as both ends report it, and
//! what ICE must have selected for each combination of NATs.

use std::fmt::Write as _;

use crate::lab::NatKind;
use crate::node::Candidate;

/// One link as both ends see it.
#[derive(Debug, Clone)]
pub struct PairView {
    /// The two nodes' names, in the order of the lab's node list.
    pub names: (String, String),
    /// Their NAT kinds.
    pub kinds: (NatKind, NatKind),
    /// How each reaches the TURN server: `udp`, `tcp` or `tls`.
    pub turn: (&'static str, &'static str),
    /// The first node's local and remote candidate.
    pub first: (Candidate, Candidate),
    /// The second node's local and remote candidate.
    pub second: (Candidate, Candidate),
}

/// The matrix as a markdown table.
pub fn render(pairs: &[PairView]) -> String {
    let mut out = String::from(
        "| pair | NATs | first: local ↔ remote | second: local ↔ remote |\n|---|---|---|---|\n",
    );
    for p in pairs {
        writeln!(
            out,
            "| {} ↔ {} | {} ↔ {} | {} ↔ {} | {} ↔ {} |",
            p.names.0,
            p.names.1,
            p.kinds.0,
            p.kinds.1,
            p.first.0,
            p.first.1,
            p.second.0,
            p.second.1
        )
        .unwrap();
    }
    out
}

/// What ICE must have selected, by the NATs of the two ends.
///
/// webrtc-rs pairs a server-reflexive candidate through its base, so a hole-punched link
/// reads `host` locally and `srflx` (or `prflx`, when the peer's check came before its
/// signaled candidate) remotely; the public address shows on the remote side only. A
/// relayed link reads `relay` at the end that relays, and the other end sees that
/// `relay` as its remote candidate.
pub fn check_pair_types(pairs: &[PairView]) -> Result<(), String> {
    let mut wrong = Vec::new();
    for p in pairs {
        let ends = [
            (&p.first, p.kinds.0, p.turn.0),
            (&p.second, p.kinds.1, p.turn.1),
        ];
        // Every candidate is UDP, except a local relay candidate, which reads how its
        // node reaches the TURN server (`relay/tcp`, `relay/tls`).
        let protocols_right = ends.iter().all(|((local, remote), _, turn)| {
            let local_proto = if local.kind == "relay" { *turn } else { "udp" };
            local.proto == local_proto && remote.proto == "udp"
        });
        let relaying =
            |((local, _), _, _): &(&(Candidate, Candidate), NatKind, &str)| local.kind == "relay";
        let remote_is = |kinds: &[&str]| {
            ends.iter()
                .all(|((_, r), _, _)| kinds.contains(&r.kind.as_str()))
        };
        // Both ends agree on which of them relays.
        let consistent = (p.first.0.kind == "relay") == (p.second.1.kind == "relay")
            && (p.second.0.kind == "relay") == (p.first.1.kind == "relay");
        let blocked = |kind: NatKind| kind == NatKind::UdpBlocked;
        let expected = match p.kinds {
            // No UDP out: a node behind such a firewall can only relay (over TCP or TLS to
            // the TURN server), whatever the other end does.
            (a, b) if blocked(a) || blocked(b) => ends
                .iter()
                .filter(|(_, kind, _)| blocked(*kind))
                .all(relaying),
            // Two hosts of one LAN reach each other at their private addresses.
            _ if same_lan(p) => !ends.iter().any(relaying) && remote_is(&["host", "prflx"]),
            // Two cone NATs: hole punching, each end reached at its public address.
            (NatKind::Cone, NatKind::Cone) => {
                !ends.iter().any(relaying) && remote_is(&["srflx", "prflx"])
            }
            // A symmetric NAT maps each destination to a new port: its srflx address is
            // useless to the peer, so one end relays through TURN. One is enough: a TURN
            // permission is for an IP address, any port, so the other end's checks get
            // through from whatever port its NAT picks.
            _ => ends.iter().any(relaying),
        };
        if !(protocols_right && consistent && expected) {
            wrong.push(format!(
                "{} <-> {}: {} <-> {} / {} <-> {}",
                p.names.0, p.names.1, p.first.0, p.first.1, p.second.0, p.second.1
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unexpected selected pairs:\n{}\n{}",
            wrong.join("\n"),
            render(pairs)
        ))
    }
}

/// Whether the pair's two nodes are on one LAN (`cone1-a`, `cone1-b`).
fn same_lan(p: &PairView) -> bool {
    p.names.0.rsplit_once('-').map(|(lan, _)| lan) == p.names.1.rsplit_once('-').map(|(lan, _)| lan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as `/links` shows it: `a b kind-a kind-b a-local a-remote b-local b-remote`.
    fn row(text: &str) -> PairView {
        let f: Vec<&str> = text.split_whitespace().collect();
        let kind = |k: &str| match k {
            "cone" => NatKind::Cone,
            "sym" => NatKind::Symmetric,
            "udpblk" => NatKind::UdpBlocked,
            other => panic!("{other}"),
        };
        // As the lab runs them: udpblk5 on TURN over TCP, udpblk6 over TLS.
        let turn = |name: &str| match name {
            "udpblk5-a" => "tcp",
            "udpblk6-a" => "tls",
            _ => "udp",
        };
        let c = |t: &str| {
            let (kind, proto) = t.split_once('/').unwrap();
            Candidate {
                kind: kind.to_owned(),
                proto: proto.to_owned(),
            }
        };
        PairView {
            names: (f[0].to_owned(), f[1].to_owned()),
            kinds: (kind(f[2]), kind(f[3])),
            turn: (turn(f[0]), turn(f[1])),
            first: (c(f[4]), c(f[5])),
            second: (c(f[6]), c(f[7])),
        }
    }

    #[test]
    fn the_observed_matrix_passes_and_impossible_pairs_do_not() {
        let observed = [
            "cone1-a cone1-b cone cone host/udp host/udp host/udp host/udp",
            "cone1-a cone2-a cone cone host/udp srflx/udp host/udp srflx/udp",
            "cone1-a sym3-a cone sym relay/udp prflx/udp host/udp relay/udp",
            "cone1-b sym4-a cone sym host/udp relay/udp relay/udp srflx/udp",
            "sym3-a sym4-a sym sym host/udp relay/udp relay/udp prflx/udp",
            "cone1-a udpblk5-a cone udpblk host/udp relay/udp relay/tcp srflx/udp",
            "sym3-a udpblk6-a sym udpblk relay/udp relay/udp relay/tls relay/udp",
            "udpblk5-a udpblk6-a udpblk udpblk relay/tcp relay/udp relay/tls relay/udp",
        ];
        check_pair_types(&observed.map(row)).unwrap();
        for wrong in [
            // Hole punching between the cone NATs failed: one end relays.
            "cone1-a cone2-a cone cone relay/udp prflx/udp host/udp relay/udp",
            // Two hosts of one LAN going through TURN.
            "cone1-a cone1-b cone cone relay/udp prflx/udp host/udp relay/udp",
            // A symmetric NAT and no relay: impossible here, so /links would be wrong.
            "cone1-a sym3-a cone sym host/udp srflx/udp host/udp srflx/udp",
            // The ends disagree on which of them relays.
            "cone1-a sym3-a cone sym relay/udp prflx/udp host/udp srflx/udp",
            // Over TCP.
            "cone1-a cone2-a cone cone host/tcp srflx/udp host/udp srflx/udp",
            // A node with no UDP out that does not relay.
            "cone1-a udpblk5-a cone udpblk relay/udp host/udp host/udp relay/udp",
            // Relaying over UDP, or over TCP when it was given TLS.
            "cone1-a udpblk5-a cone udpblk host/udp relay/udp relay/udp srflx/udp",
            "cone1-a udpblk6-a cone udpblk host/udp relay/udp relay/tcp srflx/udp",
            // Both blocked, one not relaying.
            "udpblk5-a udpblk6-a udpblk udpblk relay/tcp host/udp host/udp relay/udp",
        ] {
            assert!(check_pair_types(&[row(wrong)]).is_err(), "accepted {wrong}");
        }
    }
}
