//! `tollgate-cp`: validates gateway configs. Streaming them to proxies comes with the config
//! stream (DESIGN §8); today only `check` exists.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate_shared::{ProcessEnv, Snapshot, load_file};

#[derive(Parser)]
#[command(name = "tollgate-cp", version, about = "Tollgate control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate every `*.yaml` gateway in DIR (or one file) and print every error.
    Check {
        /// A directory of gateway configs, or one config file.
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let Command::Check { path } = Cli::parse().command;
    let files = match gateway_files(&path) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("tollgate-cp: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if files.is_empty() {
        eprintln!("tollgate-cp: no *.yaml files in {}", path.display());
        return ExitCode::FAILURE;
    }
    let mut failed = 0;
    for file in &files {
        match load_file(file, &ProcessEnv) {
            Ok(config) => {
                println!(
                    "{}: valid (version {})",
                    file.display(),
                    Snapshot::new(config).version
                )
            }
            Err(errors) => {
                failed += 1;
                for e in errors.iter() {
                    eprintln!("{e}");
                }
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} of {} gateway config(s) invalid", files.len());
        ExitCode::FAILURE
    }
}

/// One file, or every `*.yaml` directly inside a directory, sorted.
fn gateway_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
