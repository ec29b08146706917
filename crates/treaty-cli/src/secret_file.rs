//! Writing files that hold secrets (minted API keys, the example's
//! upstream keys): readable and writable by their owner only (0600), also
//! when the file already existed with a wider mode. Never used for files
//! meant to be shared, such as reports and ledger exports.

use std::io::Write;
use std::path::Path;

/// Writes `contents` to `path`, replacing it, with mode 0600.
pub(crate) fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    // The mode above applies only when the file is created.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_become_private() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.key");
        write(&fresh, b"s1").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        let wide = dir.path().join("wide.key");
        std::fs::write(&wide, b"old, longer").unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&wide, b"s2").unwrap();
        assert_eq!(mode(&wide), 0o600);
        assert_eq!(std::fs::read(&wide).unwrap(), b"s2");
    }
}
