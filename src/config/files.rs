//! Reading config layers from disk and writing blobs atomically.

use std::format;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
///
/// The temporary file is created 0600, whatever the umask, and given
/// `mode` only once it is complete: no other user can open it while it is
/// written, and a descriptor opened on it then would survive the rename
/// into a file the dispatcher trusts. Directories on the way that do not
/// exist yet are created 0755 ([`create_dirs`]).
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
    create_dirs(&dir)?;
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fs::File::open(&dir)?.sync_all()
}

/// Creates `dir` and the directories above it that are missing, each with
/// mode 0755 whatever the umask (set again after `mkdir`, which the umask
/// narrows or, at 000, would leave writable by all).
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o755).create(d) {
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(0o755))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
