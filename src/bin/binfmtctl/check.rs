//! `binfmtctl check`.

use std::process::ExitCode;

use crate::locations::Locations;

/// `binfmtctl check` options.
#[derive(clap::Args)]
pub struct Args {}

/// `binfmtctl check`.
pub fn run(_loc: &Locations, _args: &Args) -> Result<ExitCode, String> {
    Ok(ExitCode::SUCCESS)
}
