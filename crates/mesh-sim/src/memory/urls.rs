//! The URLs of the emulated servers: the bootstrap server and each node's door.

use mesh_proto::ServerUrl;

/// The emulated bootstrap server's URL.
pub(super) fn bootstrap_url() -> ServerUrl {
    "ws://bootstrap.sim/ws".parse().expect("a valid URL")
}

/// The URL node `i` announces for its door.
pub(super) fn door_url(i: u32) -> ServerUrl {
    format!("ws://n{i}.sim/ws")
        .parse()
        .expect("a valid door URL")
}

/// The node whose door `url` is, if it is one of [`door_url`]'s.
pub(super) fn door_owner(url: &ServerUrl) -> Option<u32> {
    url.as_str()
        .strip_prefix("ws://n")?
        .strip_suffix(".sim/ws")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_urls_name_their_owner() {
        for i in [0, 7, 12_345] {
            assert_eq!(door_owner(&door_url(i)), Some(i));
        }
        let other: ServerUrl = "ws://bootstrap.sim/ws".parse().unwrap();
        assert_eq!(door_owner(&other), None);
    }
}
