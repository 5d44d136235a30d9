//! Where snapshots come from. Every source ends in `Gateway::apply`.

pub mod control_plane;
pub mod file;
