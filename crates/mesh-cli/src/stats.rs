//! `/stats`: the node's counters as a short summary for a person, or as one JSON object
//! for scripts ([`Json`]: its keys are listed in docs/operations.md, "The `mesh-node`
//! command").

use std::fmt::Write;
use std::time::Duration;

use mesh_node::NodeStats;
use mesh_proto::NodeId;
use serde::Serialize;

use crate::escape::escape;

/// A few lines a person can read: links, sessions, messages, drops. Plain text, not Rust's
/// `Debug` output; the one string that comes from elsewhere (the STUN server a server
/// announced) is escaped.
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
        median(&s.link_setup).map_or("-".to_owned(), |d| format!(
            "{:.1} ms",
            d.as_secs_f64() * 1e3
        )),
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
        s.server_stun
            .as_deref()
            .map_or("none announced".to_owned(), escape),
    );
    let t = &s.turn_streams;
    if t.connections + t.failures > 0 {
        let _ = writeln!(
            text,
            "  TURN over TCP/TLS: {} connections ({} open), {} failed | {} bytes sent, {} \
             received | {} datagrams dropped",
            t.connections, t.open, t.failures, t.bytes_sent, t.bytes_received, t.dropped,
        );
    }
    text
}

/// `/stats --json`: the counters as one JSON object, its keys these fields' names.
///
/// The keys are a contract for scripts, documented in docs/operations.md ("The `mesh-node`
/// command"): new ones may be added, none is renamed or removed, and the field names are
/// the keys (snake_case) whatever the Rust names of the counters they are read from. The
/// order of the keys is not part of it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Json {
    id: String,
    degree: usize,
    server_connected: bool,
    door_registered: bool,
    server_registrations: u64,
    door_rejoins: u64,
    server_stun: Option<String>,
    links_up: u64,
    links_down: u64,
    links_shed: u64,
    links_timed_out: u64,
    links_rewired: u64,
    link_setup_median_ms: Option<f64>,
    sessions_initiated_via_server: u64,
    sessions_initiated_via_mesh: u64,
    sessions_answered_via_server: u64,
    sessions_answered_via_mesh: u64,
    sessions_failed: u64,
    sessions_rejected: u64,
    messages_sent: u64,
    messages_resent: u64,
    messages_delivered: u64,
    broadcasts_sent: u64,
    broadcasts_delivered: u64,
    frames_relayed: u64,
    dropped_no_route: u64,
    dropped_ttl: u64,
    link_send_dropped: u64,
    events_dropped: u64,
    unreachable_sent: u64,
    unreachable_received: u64,
    malformed_frames: u64,
    bad_signals: u64,
    ids_below_difficulty: u64,
    turn_stream_connections: u64,
    turn_stream_open: u64,
    turn_stream_failures: u64,
    turn_stream_bytes_sent: u64,
    turn_stream_bytes_received: u64,
    turn_stream_dropped: u64,
}

impl Json {
    /// The fields, read from `s`.
    pub fn new(id: NodeId, s: &NodeStats) -> Self {
        let o = &s.overlay;
        Self {
            id: id.to_string(),
            degree: s.degree,
            server_connected: s.server_connected,
            door_registered: s.door_registered,
            server_registrations: s.server_registrations,
            door_rejoins: s.door_rejoins,
            server_stun: s.server_stun.clone(),
            links_up: o.links_up,
            links_down: o.links_down,
            links_shed: o.links_shed,
            links_timed_out: o.links_timed_out,
            links_rewired: o.links_rewired,
            link_setup_median_ms: median(&s.link_setup).map(|d| d.as_secs_f64() * 1e3),
            sessions_initiated_via_server: o.sessions_initiated_via_server,
            sessions_initiated_via_mesh: o.sessions_initiated_via_mesh,
            sessions_answered_via_server: o.sessions_answered_via_server,
            sessions_answered_via_mesh: o.sessions_answered_via_mesh,
            sessions_failed: o.sessions_failed,
            sessions_rejected: o.sessions_rejected,
            messages_sent: o.messages_sent,
            messages_resent: o.messages_resent,
            messages_delivered: o.messages_delivered,
            broadcasts_sent: o.broadcasts_sent,
            broadcasts_delivered: o.broadcasts_delivered,
            frames_relayed: o.frames_relayed,
            dropped_no_route: o.dropped_no_route,
            dropped_ttl: o.dropped_ttl,
            link_send_dropped: s.link_send_dropped,
            events_dropped: s.events_dropped,
            unreachable_sent: o.unreachable_sent,
            unreachable_received: o.unreachable_received,
            malformed_frames: o.malformed_frames,
            bad_signals: o.bad_signals,
            ids_below_difficulty: o.ids_below_difficulty,
            turn_stream_connections: s.turn_streams.connections,
            turn_stream_open: s.turn_streams.open,
            turn_stream_failures: s.turn_streams.failures,
            turn_stream_bytes_sent: s.turn_streams.bytes_sent,
            turn_stream_bytes_received: s.turn_streams.bytes_received,
            turn_stream_dropped: s.turn_streams.dropped,
        }
    }

    /// The object on one line of printable ASCII: serde_json escapes the C0 controls in
    /// strings, and every other character outside printable ASCII is written as a `\uXXXX`
    /// escape too (the same value for a JSON parser), so that a string that came from a
    /// server (`server_stun`) cannot put a control or bidi character on the terminal.
    pub fn to_line(&self) -> String {
        let json = serde_json::to_string(self).expect("a struct of numbers and strings");
        let mut line = String::with_capacity(json.len());
        for c in json.chars() {
            if c.is_ascii() && !c.is_ascii_control() {
                line.push(c);
            } else {
                // Outside printable ASCII: only inside strings (JSON's own syntax is ASCII).
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(line, "\\u{unit:04x}");
                }
            }
        }
        line
    }
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
        assert!(text.contains("setup median 30.0 ms"), "{text}");
        assert!(!text.contains('{'), "not a Debug dump: {text}");
        assert!(!text.contains("Some("), "not a Debug dump: {text}");
    }

    #[test]
    fn the_summary_escapes_what_a_server_announced() {
        let mut s = stats();
        s.server_stun = Some("stun:x\n\x1b[2J\u{202e}:1".into());
        let text = summary(NodeId::from([7; 16]), &s);
        assert!(
            text.contains("STUN stun:x\\n\\x1b[2J\\u{202e}:1\n"),
            "{text}"
        );
        assert_eq!(text.matches('\n').count(), text.lines().count(), "{text}");
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
            "{text:?}"
        );
    }

    /// The keys docs/operations.md lists in its `/stats --json` table.
    fn documented_keys() -> Vec<String> {
        let docs = include_str!("../../../docs/operations.md");
        let (_, section) = docs
            .split_once("**`/stats --json`**")
            .expect("docs/operations.md has a /stats --json section");
        let mut keys = Vec::new();
        for row in section
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
        {
            let cell = row.split('|').nth(1).expect("| key | meaning |");
            keys.extend(cell.split('`').skip(1).step_by(2).map(str::to_owned));
        }
        keys
    }

    #[test]
    fn the_json_object_has_exactly_the_documented_keys() {
        let id = NodeId::from([7; 16]);
        let line = Json::new(id, &stats()).to_line();
        assert!(!line.contains('\n'), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["id"], id.to_string());
        assert_eq!(value["degree"], 2);
        assert_eq!(value["links_up"], 3);
        assert_eq!(value["sessions_initiated_via_mesh"], 4);
        assert_eq!(value["messages_delivered"], 5);
        assert_eq!(value["server_connected"], false);
        assert_eq!(value["server_stun"], "stun:127.0.0.1:3478");
        assert_eq!(value["link_setup_median_ms"], 30.0);
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut documented = documented_keys();
        documented.sort();
        assert!(
            documented.len() >= 30,
            "the docs table was not found: {documented:?}"
        );
        assert_eq!(
            keys, documented,
            "/stats --json's keys and docs/operations.md's table"
        );
        // Absent values are null, not left out.
        let line = Json::new(id, &NodeStats::default()).to_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["server_stun"], serde_json::Value::Null);
        assert_eq!(value["link_setup_median_ms"], serde_json::Value::Null);
        assert_eq!(value.as_object().unwrap().len(), documented.len());
    }

    #[test]
    fn the_json_line_is_printable_ascii_and_keeps_every_string() {
        let mut s = stats();
        let stun = "stun:\u{202e}x\x1b[31m\n\r\x7f\u{9b}\u{2028}\u{1f600}\"\\:1";
        s.server_stun = Some(stun.into());
        let line = Json::new(NodeId::from([7; 16]), &s).to_line();
        assert!(
            line.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
            "{line}"
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["server_stun"], stun);
    }
}
