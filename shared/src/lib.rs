//! The contract both planes agree on: the config model, its validation and its snapshots.
#![forbid(unsafe_code)]

pub mod admin;
pub mod compress;
pub mod config;
pub mod convert;
pub mod delta;
pub mod files;
pub mod process;
pub mod proto;
pub mod tls;
pub mod watch;

pub use config::{
    ConfigError, ConfigErrors, Env, LoadMode, ProcessEnv, Snapshot, SnapshotSource, load_file,
    load_file_with, load_str, load_str_with, version_of,
};
