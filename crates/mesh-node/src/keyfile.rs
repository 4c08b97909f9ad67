//! Persistent identities: a key file holds the 32-byte Ed25519 seed as 64 hex digits and a
//! newline, readable only by its owner.

use std::io::Write;
use std::path::Path;

use mesh_proto::identity::Keypair;

use crate::Error;

/// Loads the key in `path`, or creates one there (mode 0600) if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<Keypair, Error> {
    let fail = |source: std::io::Error| Error::KeyFile {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse(text.trim())
            .map_err(|why| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, why))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate();
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
        let first = load_or_create(&path).unwrap();
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.node_id(), again.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let err = load_or_create(&path).unwrap_err();
        let why = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            why.as_deref()
                .is_some_and(|why| why.contains("64 hex digits")),
            "{err}: {why:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
