//! Where an emulator keeps files besides its database: its data dir, or with `--in-memory` a
//! temporary directory of its own (object files, unpacked code, agent output).
//!
//! A temporary directory is removed at a clean shutdown. One left by an emulator that was killed
//! (kill -9, a crash, a test's teardown) would stay in the system's temp dir for good, with every
//! object uploaded to it: so each temporary directory holds `owner.lock`, locked (flock) for as
//! long as its emulator runs, and a starting emulator removes the directories whose lock nobody
//! holds. The lock, not a pid, tells: a pid can be reused, a lock dies with its process.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The prefix of a temporary state directory in the system's temp dir.
const PREFIX: &str = "agentcore-local-";
/// Locked by the running emulator that owns the directory.
const OWNER_LOCK: &str = "owner.lock";

pub enum StateDir {
    Data(PathBuf),
    Temporary {
        dir: tempfile::TempDir,
        /// Holds the lock on `owner.lock` until the emulator exits.
        _owner: File,
    },
}

impl StateDir {
    /// The data dir, or a new temporary directory in `temp_root` (the system's temp dir).
    pub fn new(data_dir: Option<&Path>, temp_root: &Path) -> std::io::Result<StateDir> {
        let Some(dir) = data_dir else {
            let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(temp_root)?;
            // Locked under another name, then renamed: a starting emulator scanning meanwhile
            // never finds the lock file unlocked.
            let unnamed = dir.path().join(format!("{OWNER_LOCK}.new"));
            let owner = File::create(&unnamed)?;
            if !try_lock(&owner)? {
                return Err(std::io::Error::other("could not lock the new state directory"));
            }
            std::fs::rename(&unnamed, dir.path().join(OWNER_LOCK))?;
            return Ok(StateDir::Temporary { dir, _owner: owner });
        };
        Ok(StateDir::Data(dir.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        match self {
            StateDir::Data(p) => p,
            StateDir::Temporary { dir, .. } => dir.path(),
        }
    }
}

/// Removes the temporary state directories in `temp_root` whose emulator is gone (their
/// `owner.lock` is not locked); returns how many. Directories without the lock file (another
/// program's, or an older emulator's) are left alone.
pub fn remove_abandoned(temp_root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(temp_root) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let is_ours = entry.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX));
        if !is_ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let Ok(lock) = File::open(dir.join(OWNER_LOCK)) else { continue };
        // Held while removing, so a second emulator scanning at the same time skips it.
        if try_lock(&lock).unwrap_or(false) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "could not remove an abandoned state directory")
                }
            }
        }
    }
    removed
}

/// An exclusive flock, without waiting: `Ok(false)` when another open file holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor this `File` owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_whose_emulator_is_gone_is_removed_and_a_live_ones_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let live = StateDir::new(None, root.path()).unwrap();
        let abandoned = StateDir::new(None, root.path()).unwrap();
        let abandoned_path = abandoned.path().to_path_buf();
        std::fs::write(abandoned_path.join("object"), b"left by a killed emulator").unwrap();
        // What kill -9 leaves: the directory, its lock released with the process's descriptors.
        let StateDir::Temporary { dir, _owner } = abandoned else { unreachable!() };
        let _kept = dir.keep();
        drop(_owner);
        // Another program's directory with our prefix, and an older emulator's (no lock file).
        let foreign = root.path().join(format!("{PREFIX}someone-else"));
        std::fs::create_dir(&foreign).unwrap();

        assert_eq!(remove_abandoned(root.path()), 1);
        assert!(!abandoned_path.exists(), "the abandoned directory is gone");
        assert!(live.path().join(OWNER_LOCK).exists(), "the live emulator's directory is kept");
        assert!(foreign.exists(), "a directory without our lock file is left alone");
    }

    #[test]
    fn a_data_dir_is_used_as_it_is() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::new(Some(root.path()), root.path()).unwrap();
        assert_eq!(dir.path(), root.path());
        assert_eq!(remove_abandoned(root.path()), 0);
    }
}
