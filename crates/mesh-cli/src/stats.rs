//! `/stats`: the node's counters as a short summary for a person, or as one JSON object
//! for scripts (its fields are listed in docs/operations.md, "The /stats command").

use std::fmt::Write;
use std::time::Duration;

use mesh_node::NodeStats;
use mesh_proto::NodeId;

/// A few lines a person can read: links, sessions, messages, drops.
pub fn summary(id: NodeId, s: &NodeStats) -> String {
    let o = &s.overlay;
    let mut text = String::new();
    let server = match (s.server_connected, s.door_registered) {
        (true, true) => "connected; registered at its own door",
        (true, false) => "connected",
        (false, true) => "not connected; registered at its own door",
        (false, false) => "not connected",
    };
    let _ = writeln!(text, "node {id}");
    let _ = writeln!(
        text,
        "  neighbours {} | links {} up, {} down ({} shed, {} timed out) | setup median {}",
        s.degree,
        o.links_up,
        o.links_down,
        o.links_shed,
        o.links_timed_out,
        median(&s.link_setup).map_or("-".to_owned(), |d| format!("{d:.1?}")),
    );
    let _ = writeln!(
        text,
        "  sessions via server {} started, {} answered | via mesh {} started, {} answered | \
         {} failed, {} refused",
        o.sessions_initiated_via_server,
        o.sessions_answered_via_server,
        o.sessions_initiated_via_mesh,
        o.sessions_answered_via_mesh,
        o.sessions_failed,
        o.sessions_rejected,
    );
    let _ = writeln!(
        text,
        "  messages {} sent, {} delivered here | broadcasts {} sent, {} delivered here | \
         {} relayed for others",
        o.messages_sent,
        o.messages_delivered,
        o.broadcasts_sent,
        o.broadcasts_delivered,
        o.frames_relayed,
    );
    let _ = writeln!(
        text,
        "  dropped: {} no route, {} out of hops, {} link queue full, {} events unread | \
         {} reported unreachable",
        o.dropped_no_route,
        o.dropped_ttl,
        s.link_send_dropped,
        s.events_dropped,
        o.unreachable_received,
    );
    let _ = writeln!(
        text,
        "  bootstrap server {server} | {} registrations, {} at neighbours' doors | STUN {}",
        s.server_registrations,
        s.door_rejoins,
        s.server_stun.as_deref().unwrap_or("none announced"),
    );
    text
}

/// The counters as one JSON object. The keys are stable: new ones may be added, none is
/// renamed or removed.
pub fn json(id: NodeId, s: &NodeStats) -> serde_json::Value {
    let o = &s.overlay;
    serde_json::json!({
        "id": id.to_string(),
        "degree": s.degree,
        "server_connected": s.server_connected,
        "door_registered": s.door_registered,
        "server_registrations": s.server_registrations,
        "door_rejoins": s.door_rejoins,
        "server_stun": s.server_stun,
        "links_up": o.links_up,
        "links_down": o.links_down,
        "links_shed": o.links_shed,
        "links_timed_out": o.links_timed_out,
        "links_rewired": o.links_rewired,
        "link_setup_median_ms": median(&s.link_setup).map(|d| d.as_secs_f64() * 1e3),
        "sessions_initiated_via_server": o.sessions_initiated_via_server,
        "sessions_initiated_via_mesh": o.sessions_initiated_via_mesh,
        "sessions_answered_via_server": o.sessions_answered_via_server,
        "sessions_answered_via_mesh": o.sessions_answered_via_mesh,
        "sessions_failed": o.sessions_failed,
        "sessions_rejected": o.sessions_rejected,
        "messages_sent": o.messages_sent,
        "messages_resent": o.messages_resent,
        "messages_delivered": o.messages_delivered,
        "broadcasts_sent": o.broadcasts_sent,
        "broadcasts_delivered": o.broadcasts_delivered,
        "frames_relayed": o.frames_relayed,
        "dropped_no_route": o.dropped_no_route,
        "dropped_ttl": o.dropped_ttl,
        "link_send_dropped": s.link_send_dropped,
        "events_dropped": s.events_dropped,
        "unreachable_sent": o.unreachable_sent,
        "unreachable_received": o.unreachable_received,
        "malformed_frames": o.malformed_frames,
        "bad_signals": o.bad_signals,
    })
}

/// The median of `times` (the upper one of an even count), if any.
fn median(times: &[Duration]) -> Option<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> NodeStats {
        let mut s = NodeStats::default();
        s.degree = 2;
        s.overlay.links_up = 3;
        s.overlay.sessions_initiated_via_mesh = 4;
        s.overlay.messages_delivered = 5;
        s.server_stun = Some("stun:127.0.0.1:3478".into());
        s.link_setup = vec![Duration::from_millis(30), Duration::from_millis(10)];
        s
    }

    #[test]
    fn the_summary_is_short_and_names_the_counters() {
        let id = NodeId::from([7; 16]);
        let text = summary(id, &stats());
        assert!(text.lines().count() <= 8, "{text}");
        assert!(text.starts_with(&format!("node {id}\n")), "{text}");
        assert!(text.contains("neighbours 2 | links 3 up"), "{text}");
        assert!(text.contains("via mesh 4 started"), "{text}");
        assert!(text.contains("5 delivered here"), "{text}");
        assert!(text.contains("STUN stun:127.0.0.1:3478"), "{text}");
        assert!(text.contains("setup median 30.0ms"), "{text}");
        assert!(!text.contains('{'), "not a Debug dump: {text}");
    }

    #[test]
    fn the_json_object_has_the_documented_keys() {
        let id = NodeId::from([7; 16]);
        let value = json(id, &stats());
        assert_eq!(value["id"], id.to_string());
        assert_eq!(value["degree"], 2);
        assert_eq!(value["sessions_initiated_via_mesh"], 4);
        assert_eq!(value["server_stun"], "stun:127.0.0.1:3478");
        assert_eq!(value["link_setup_median_ms"], 30.0);
        let docs = include_str!("../../../docs/operations.md");
        for key in value.as_object().unwrap().keys() {
            assert!(
                docs.contains(&format!("`{key}`")),
                "docs/operations.md does not document /stats --json's {key}"
            );
        }
    }
}
