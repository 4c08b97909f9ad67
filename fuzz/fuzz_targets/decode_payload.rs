//! Fuzzes the payload decoder (what `Unicast`, `Transfer`, `Route` and `Flood` carry, and
//! what a sealed payload holds): no input may panic `decode_payload`, and every payload
//! that decodes re-encodes to the minimal form of the same payload (no longer than the
//! input, its tag first), which decodes back to that payload and is a fixed point.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::{decode_payload, encode_payload};

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = decode_payload(data) else {
        return;
    };
    // Encoders write minimal varints; decoders may accept longer forms, never shorter.
    let bytes = encode_payload(&payload).expect("a decoded payload re-encodes");
    assert!(bytes.len() <= data.len(), "re-encoding grew the payload");
    assert_eq!(bytes[0], payload.tag(), "the tag leads");
    let again = decode_payload(&bytes).expect("a re-encoded payload decodes");
    assert_eq!(again, payload, "encode→decode changed the payload");
    assert_eq!(
        encode_payload(&again).expect("re-encodes"),
        bytes,
        "minimal form is a fixed point"
    );
});
