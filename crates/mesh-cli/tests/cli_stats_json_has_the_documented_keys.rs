//! `/stats --json` of the real `mesh-node` binary, between two linked processes: one line
//! of printable ASCII that parses as a JSON object whose keys are exactly those of the
//! table in docs/operations.md, each with the documented kind of value (the id a string,
//! the two states booleans, `server_stun` a string or null, `link_setup_median_ms` a number
//! or null, every other one a count).

mod support;

use support::{serve, spawn};

/// The keys of docs/operations.md's `/stats --json` table: the backquoted names of each
/// row's first cell.
fn documented_keys() -> Vec<String> {
    let docs = include_str!("../../../docs/operations.md");
    let (_, section) = docs
        .split_once("**`/stats --json`**")
        .expect("docs/operations.md has a /stats --json section");
    let mut rows = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'));
    assert_eq!(rows.next(), Some("| key | meaning |"));
    assert_eq!(rows.next(), Some("|---|---|"));
    let mut keys = Vec::new();
    for row in rows {
        let cell = row.split('|').nth(1).expect("| key | meaning |");
        keys.extend(cell.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_json_has_the_documented_keys() {
    let documented = documented_keys();
    assert!(documented.len() >= 30, "{documented:?}");

    let (mut a, url) = serve(&["--degree", "2"]).await;
    let mut b = spawn(&url).await;
    b.peers(1).await;

    b.say("/stats --json").await;
    let line = loop {
        let line = b.line().await;
        if line.starts_with('{') {
            break line;
        }
    };
    assert!(
        line.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
        "printable ASCII: {line}"
    );
    let stats: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
    let object = stats.as_object().expect("an object");

    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = documented.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(keys, want, "the keys printed and the keys documented");

    for (key, value) in object {
        let ok = match key.as_str() {
            "id" => value.as_str() == Some(b.id.as_str()),
            "server_connected" | "door_registered" => value.is_boolean(),
            "server_stun" => value.is_string() || value.is_null(),
            "link_setup_median_ms" => value.is_f64() || value.is_null(),
            _ => value.is_u64(),
        };
        assert!(ok, "{key}: {value} is not what docs/operations.md says");
    }
    // The values are b's: one neighbour, no door of its own.
    assert_eq!(stats["degree"], 1, "{stats}");
    assert_eq!(stats["door_registered"], false, "{stats}");
    assert!(stats["links_up"].as_u64().unwrap() >= 1, "{stats}");

    for p in [&mut a, &mut b] {
        p.quit().await;
    }
}
