//! Persistent identities: a key file holds the 32-byte Ed25519 seed as 64 hex digits and a
//! newline, readable only by its owner.

use std::io::Write;
use std::path::Path;

use mesh_proto::identity::Keypair;
use mesh_proto::puzzle;

use crate::Error;

/// Loads the key in `path`, or creates one there (mode 0600) if the file does not exist.
/// The key must meet the id puzzle of `difficulty` bits (docs/protocol.md §4.7; 0: none):
/// a new one is mined to meet it (2^`difficulty` keys on average), and a stored one that
/// does not is refused (`InvalidData`), with what to do: its id is the node's identity, so
/// it is never replaced behind the user's back.
pub fn load_or_create(path: &Path, difficulty: u32) -> Result<Keypair, Error> {
    let fail = |source: std::io::Error| Error::KeyFile {
        path: path.to_owned(),
        source,
    };
    let invalid = |why: String| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = parse(text.trim()).map_err(invalid)?;
            let id = key.node_id();
            if !puzzle::meets(&id, difficulty) {
                return Err(invalid(format!(
                    "its node id {id} has difficulty {}, below the {difficulty} bits required \
                     (--id-difficulty): move the file away to make a new key that meets it \
                     (the node's id will change), or lower --id-difficulty",
                    puzzle::difficulty(&id)
                )));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_with_difficulty(difficulty)
                .map_err(|e| Error::Core(mesh_core::Error::Proto(e)))?;
            let text: String = key.to_seed().iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(fail)?;
            writeln!(file, "{text}").map_err(fail)?;
            Ok(key)
        }
        Err(e) => Err(fail(e)),
    }
}

fn parse(text: &str) -> Result<Keypair, String> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 64 hex digits (a 32-byte Ed25519 seed)".to_owned());
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(Keypair::from_seed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_then_loaded_is_the_same_identity() {
        let dir = std::env::temp_dir().join(format!("mesh-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let _ = std::fs::remove_file(&path);
        let first = load_or_create(&path, 0).unwrap();
        let again = load_or_create(&path, 0).unwrap();
        assert_eq!(first.node_id(), again.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let err = load_or_create(&path, 0).unwrap_err();
        let why = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            why.as_deref()
                .is_some_and(|why| why.contains("64 hex digits")),
            "{err}: {why:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_new_key_meets_the_difficulty_and_a_stored_one_below_it_is_refused() {
        let dir = std::env::temp_dir().join(format!("mesh-keyfile-pow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let _ = std::fs::remove_file(&path);
        let mined = load_or_create(&path, 8).unwrap();
        assert!(puzzle::difficulty(&mined.node_id()) >= 8);
        assert_eq!(load_or_create(&path, 8).unwrap().node_id(), mined.node_id());

        // A stored key below the difficulty: refused, kept, and the message says what to do.
        let cheap = std::iter::repeat_with(Keypair::generate)
            .find(|k| !puzzle::meets(&k.node_id(), 8))
            .unwrap();
        let text: String = cheap.to_seed().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&path, format!("{text}\n")).unwrap();
        let err = load_or_create(&path, 8).unwrap_err();
        let why = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap();
        assert!(why.contains("below the 8 bits required"), "{why}");
        assert!(why.contains("move the file away"), "{why}");
        assert_eq!(load_or_create(&path, 0).unwrap().node_id(), cheap.node_id());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
