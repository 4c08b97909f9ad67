//! Fuzzes the decoder of the messages between the bootstrap servers of a fleet
//! (`mesh_proto::fleet`, docs/protocol.md §11.3): no input may panic `Message::decode`, a
//! smaller frame limit only refuses more, and every message that decodes re-encodes to the
//! very same bytes (the format has one encoding per message).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::fleet::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(data, 65_536) else {
        return;
    };
    assert_eq!(message.encode(), data, "one encoding per message");
    if let Ok(smaller) = Message::decode(data, 16) {
        assert_eq!(smaller, message, "a smaller limit decodes the same or refuses");
    }
});
