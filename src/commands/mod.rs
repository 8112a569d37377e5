//! The commands beyond `run`, `generate` and `bench`: one file per command.

pub mod check;
pub mod cluster;
pub mod produce;
pub mod tail;
pub mod topics;
