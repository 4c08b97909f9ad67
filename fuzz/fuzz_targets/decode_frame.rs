//! Fuzzes the one frame decoder: no input may panic `decode` or `decode_with_limit`, the
//! two agree, and every frame that decodes re-encodes to the minimal form of the same
//! frame (no longer than the input), which decodes back to that frame and is a fixed point.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::{MAX_FRAME_SIZE, decode, decode_with_limit, encode};

/// The default `max_frame_size` of the bootstrap server: the limit most carriers enforce.
const SERVER_FRAME_LIMIT: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data);

    // decode is decode_with_limit at the protocol maximum; a larger limit is capped to it.
    assert_eq!(
        decode_with_limit(data, MAX_FRAME_SIZE).ok(),
        decoded.as_ref().ok().cloned()
    );
    assert_eq!(
        decode_with_limit(data, usize::MAX).ok(),
        decoded.as_ref().ok().cloned()
    );

    // A smaller limit refuses exactly the longer inputs and otherwise changes nothing.
    let limited = decode_with_limit(data, SERVER_FRAME_LIMIT);
    if data.len() > SERVER_FRAME_LIMIT {
        assert!(
            limited.is_err(),
            "{} bytes passed a {SERVER_FRAME_LIMIT}-byte limit",
            data.len()
        );
    } else {
        assert_eq!(limited.ok(), decoded.as_ref().ok().cloned());
    }
    // A limit one byte below the input always refuses it.
    assert!(decode_with_limit(data, data.len().saturating_sub(1)).is_err());

    if let Ok(frame) = decoded {
        // Encoders write minimal varints; decoders may accept longer forms, never shorter.
        let bytes = encode(&frame).expect("a decoded frame re-encodes");
        assert!(bytes.len() <= data.len(), "re-encoding grew the frame");
        let again = decode(&bytes).expect("a re-encoded frame decodes");
        assert_eq!(again, frame, "encode→decode changed the frame");
        assert_eq!(
            encode(&again).expect("re-encodes"),
            bytes,
            "minimal form is a fixed point"
        );
    }
});
