//! Reading config layers from disk.

use std::format;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::string::String;

use super::{Config, ConfigError, Loc};

/// An error of the compile step: a config error, or an I/O error on a file.
#[derive(Debug)]
pub enum CompileError {
    /// The configuration is wrong.
    Config(ConfigError),
    /// A file could not be read or written.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::Config(e) => write!(f, "{e}"),
            CompileError::Io(path, e) => write!(f, "{}: {e}", path.display()),
        }
    }
}

impl std::error::Error for CompileError {}

/// Reads and merges the TOML files `layers`, in order.
pub fn load_layers(layers: &[PathBuf]) -> Result<Config, CompileError> {
    let mut config = Config::default();
    for path in layers {
        let text = fs::read(path).map_err(|e| CompileError::Io(path.clone(), e))?;
        let name = path.display().to_string();
        let text = String::from_utf8(text).map_err(|e| {
            CompileError::Config(ConfigError {
                loc: Loc {
                    file: name.clone(),
                    line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count(),
                    column: 1,
                },
                message: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            })
        })?;
        config.merge(Config::parse(&name, &text).map_err(CompileError::Config)?);
    }
    Ok(config)
}
