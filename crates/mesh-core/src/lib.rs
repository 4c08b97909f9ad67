//! The pure overlay state machine of the mesh. (Being written.)
#![warn(missing_docs)]
