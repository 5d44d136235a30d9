//! The contract both planes agree on: the config model, its validation and its snapshots.
#![forbid(unsafe_code)]

pub mod config;

pub use config::{
    ConfigError, ConfigErrors, Env, ProcessEnv, Snapshot, SnapshotSource, load_file, load_str,
};
