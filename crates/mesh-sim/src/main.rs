//! `mesh-sim`: run a simulation scenario and write its report. (Being written.)

fn main() {}
