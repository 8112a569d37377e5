//! The commands beyond `run`, `check`, `generate` and `bench`: one file per command.

pub mod cluster;
pub mod produce;
pub mod tail;
pub mod topics;
