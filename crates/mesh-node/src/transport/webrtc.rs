//! WebRTC links. (Being written.)
