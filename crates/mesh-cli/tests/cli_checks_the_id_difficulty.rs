//! `mesh-node --id-difficulty N` (docs/protocol.md §4.7): above 24 it is refused; a `--key`
//! file whose id is below N is refused, kept, with what to do; a new `--key` file gets a
//! mined key whose id meets N.

use std::process::{Command, Output, Stdio};

use mesh_proto::identity::Keypair;
use mesh_proto::{NodeId, puzzle};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-node");
/// Nothing listens here: a run that gets past the flags fails to join, quickly.
const NOWHERE: &str = "ws://127.0.0.1:1/ws";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--bootstrap", NOWHERE, "--bind", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MESH_ID_DIFFICULTY")
        .stdin(Stdio::null())
        .output()
        .expect("run mesh-node")
}

fn hex(key: &Keypair) -> String {
    key.to_seed().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_id_difficulty_is_checked_and_honoured() {
    let out = run(&["--id-difficulty", "25"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0..=24"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("mesh-cli-pow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // A stored key below the difficulty: refused before the node starts; the file stays.
    let cheap = std::iter::repeat_with(Keypair::generate)
        .find(|k| !puzzle::meets(&k.node_id(), 8))
        .unwrap();
    let path = dir.join("cheap.key");
    std::fs::write(&path, format!("{}\n", hex(&cheap))).unwrap();
    let out = run(&["--key", path.to_str().unwrap(), "--id-difficulty", "8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "the node started");
    assert!(
        stderr.contains("below the 8 bits required") && stderr.contains("move the file away"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        hex(&cheap),
        "the key file is kept"
    );

    // A new key file: mined to meet the difficulty; the node prints its id, then fails to
    // join (nothing listens).
    let path = dir.join("new.key");
    let out = run(&["--key", path.to_str().unwrap(), "--id-difficulty", "8"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id: NodeId = stdout.lines().next().expect("the id line").parse().unwrap();
    assert!(puzzle::difficulty(&id) >= 8, "{id}");
    assert!(path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
