//! In-process links. (Being written.)
