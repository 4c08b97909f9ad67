//! The plots of a report, as SVG. (Being written.)

use std::path::Path;

use crate::Report;

/// Draws every plot of `report` into `dir`.
pub fn all(_report: &Report, _dir: &Path) -> anyhow::Result<()> {
    Ok(())
}
