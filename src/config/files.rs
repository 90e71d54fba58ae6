//! Reading config layers from disk and writing blobs atomically.

use std::format;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::string::String;
use std::vec::Vec;

use super::{compile, Config, ConfigError, Loc};

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

/// Compiles the TOML files `layers` into a blob at `output`, replacing it
/// atomically: a reader sees the old file or the new one, never a mix, and
/// on any error the old file is left as it was.
pub fn compile_files(layers: &[PathBuf], output: &Path) -> Result<Vec<u8>, CompileError> {
    let config = load_layers(layers)?;
    let blob = compile(&config).map_err(CompileError::Config)?;
    write_atomically(output, &blob).map_err(|e| CompileError::Io(output.to_path_buf(), e))?;
    Ok(blob)
}

/// Writes `bytes` to `path` by way of a temporary file in the same
/// directory, fsync and rename, then fsyncs the directory; mode 0644.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // Readable by all, writable by the owner only: the trampoline rejects
    // a group- or world-writable cache in secure mode.
    write_atomically_mode(path, bytes, 0o644)
}

/// [`write_atomically`], with the file's `mode`.
pub fn write_atomically_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fs::File::open(&dir)?.sync_all()
}
