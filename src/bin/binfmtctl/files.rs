//! Writing files atomically, as no other user can open them until they
//! are complete, and never through a directory another user controls.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

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
    check_trusted(&dir)?;
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
/// narrows or, at 000, would leave writable by all). The mode is set
/// through a descriptor opened without following a symbolic link, so a
/// name swapped after the `mkdir` cannot turn it into a `chmod` of
/// another file.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o755).create(d) {
            Ok(()) => fs::OpenOptions::new()
                .read(true)
                .custom_flags((OFlags::DIRECTORY | OFlags::NOFOLLOW).bits() as i32)
                .open(d)?
                .set_permissions(fs::Permissions::from_mode(0o755))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// As root, refuses a directory to write in that another user could have
/// pointed elsewhere: one of the existing directories on its path (or a
/// symbolic link among them) owned by someone else, or writable by all
/// without the sticky bit. Root run with a user's `HOME` (`sudo -E
/// binfmtctl compile --user`) would otherwise follow that user's
/// `~/.cache/binfmt-dispatcher -> /var/cache/binfmt-dispatcher` and write
/// the user's configuration as the system cache. Root's own are those of
/// uid 0 and of the owner of `/`: in a user namespace the real root's files
/// show as the overflow uid, and root there is its creator, no one more.
/// Other users write only where they could anyway.
pub fn check_trusted(dir: &Path) -> io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let root_owner = fs::metadata("/")?.uid();
    let dir = std::env::current_dir()?.join(dir);
    let mut path = PathBuf::new();
    for part in dir.components() {
        path.push(part);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            break;
        };
        let owner = meta.uid();
        let open_to_all = meta.mode() & 0o1002 == 0o002 && !meta.file_type().is_symlink();
        if (owner != 0 && owner != root_owner) || open_to_all {
            let why = match owner {
                0 => String::from("writable by all"),
                uid => format!("owned by uid {uid}"),
            };
            let message = format!("{}: {why}: root does not write below it", path.display());
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, message));
        }
    }
    Ok(())
}
