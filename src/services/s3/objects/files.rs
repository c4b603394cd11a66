//! Where object bytes live: one immutable file per object version or part, under
//! `<root>/data/<2 hex>/<uuid>`. New bytes go to a temp file in `<root>/tmp` (hashed as they are
//! written), are fsynced, then renamed into place and the directory fsynced, all before the
//! metadata transaction that makes them visible commits. A file is never rewritten: a reader that
//! holds a path keeps seeing the same bytes until the version is deleted.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

pub use super::staging::{Staged, Staging};

use super::checksum::{Algorithm, Hasher};

/// Read size when copying or hashing existing files.
const COPY_BUFFER_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub struct FileStore {
    data: PathBuf,
    tmp: PathBuf,
    /// While the start-up scan for orphaned files runs (in the background, after the server
    /// accepts requests), the names this process places: such a file exists before the row that
    /// refers to it commits, so the scan must not take it for an orphan. `None` once the scan is
    /// done, so nothing is kept for the life of the process.
    placed_during_scan: parking_lot::Mutex<Option<HashSet<String>>>,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FileStore {
    /// Opens (creating) the store under `root`; leftovers of interrupted uploads are removed.
    pub fn open(root: &Path) -> io::Result<FileStore> {
        let data = root.join("data");
        let tmp = root.join("tmp");
        fs::create_dir_all(&data)?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        // Every file placed from now on is this process's: the orphan scan starts watching at once.
        Ok(FileStore { data, tmp, placed_during_scan: parking_lot::Mutex::new(Some(HashSet::new())) })
    }

    /// The absolute path of a stored file name.
    pub fn path(&self, file: &str) -> PathBuf {
        self.data.join(file)
    }

    /// A new staging file hashing MD5, optionally SHA-256 and one checksum algorithm.
    pub fn staging(&self, checksum: Option<Algorithm>, sha256: bool) -> io::Result<Staging> {
        let (file, path) = tempfile::Builder::new().prefix("upload-").tempfile_in(&self.tmp)?.into_parts();
        Ok(Staging::new(file, path, checksum, sha256))
    }

    fn new_name() -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{}/{}", &id[..2], id)
    }

    fn place(&self) -> io::Result<(String, PathBuf)> {
        let name = Self::new_name();
        if let Some(placed) = self.placed_during_scan.lock().as_mut() {
            placed.insert(name.clone());
        }
        let dest = self.data.join(&name);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        Ok((name, dest))
    }

    /// Moves a staged file into place (durably) and returns its stored name.
    pub fn commit(&self, staged: Staged) -> io::Result<String> {
        let (name, dest) = self.place()?;
        staged.path.persist(&dest).map_err(|e| e.error)?;
        sync_dir(dest.parent().unwrap_or(&self.data))?;
        Ok(name)
    }

    /// A new stored name with the same bytes as `file` (a hard link; a copy where links fail).
    pub fn duplicate(&self, file: &str) -> io::Result<String> {
        let (name, dest) = self.place()?;
        if fs::hard_link(self.path(file), &dest).is_err() {
            let mut staging = self.staging(None, false)?;
            let len = fs::metadata(self.path(file))?.len();
            self.append_to(&mut staging, file, 0, len)?;
            staging.finish()?.path.persist(&dest).map_err(|e| e.error)?;
        }
        sync_dir(dest.parent().unwrap_or(&self.data))?;
        Ok(name)
    }

    /// Reads a stored file (or a byte range of it) through the given hashers.
    pub fn hash_file(&self, file: &str, md5: &mut Option<Md5>, checksum: &mut Option<Hasher>) -> io::Result<u64> {
        let mut src = File::open(self.path(file))?;
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        let mut total = 0u64;
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            if let Some(h) = md5.as_mut() {
                h.update(&buf[..n]);
            }
            if let Some(h) = checksum.as_mut() {
                h.update(&buf[..n]);
            }
        }
    }

    /// Appends `len` bytes of a stored file from `offset` to a staging file.
    pub fn append_to(&self, staging: &mut Staging, file: &str, offset: u64, len: u64) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut src = File::open(self.path(file))?;
        src.seek(SeekFrom::Start(offset))?;
        let mut src = src.take(len);
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        let mut copied = 0u64;
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            copied += n as u64;
            staging.write(&buf[..n])?;
        }
        if copied != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{file} is shorter than expected")));
        }
        Ok(())
    }

    /// Removes stored files; a file already gone is fine.
    pub fn remove(&self, files: &[String]) {
        for f in files {
            if let Err(e) = fs::remove_file(self.path(f)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %f, error = %e, "could not remove object file");
                }
            }
        }
    }

    /// Removes every stored file that no row refers to (left by a crash between writing the
    /// file and committing its row). `referenced` is read after this store opened, so a file
    /// not in it is either an orphan of an earlier run or one this process placed since (kept:
    /// see `placed_during_scan`); nothing else makes an existing file referenced again. Ends the
    /// watch over placed names. Returns how many were removed.
    pub fn remove_unreferenced(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        let result = self.remove_orphans_of_earlier_runs(referenced);
        *self.placed_during_scan.lock() = None;
        result
    }

    fn remove_orphans_of_earlier_runs(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for dir in fs::read_dir(&self.data)? {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            let prefix = dir.file_name().to_string_lossy().into_owned();
            for entry in fs::read_dir(dir.path())? {
                let entry = entry?;
                let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
                if referenced.contains(&name) {
                    continue;
                }
                // Checked under the lock `place` takes, so a name placed before this point is
                // seen; one placed after it is a new uuid, never this one.
                let placed = self.placed_during_scan.lock();
                if placed.as_ref().is_some_and(|p| p.contains(&name)) {
                    continue;
                }
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    // Deleted meanwhile by the request that dropped its row.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orphan_scan_keeps_files_this_process_placed_and_stops_watching_after() {
        let dir = tempfile::tempdir().unwrap();
        let orphan = dir.path().join("data/ff/ff00000000000000000000000000dead");
        fs::create_dir_all(orphan.parent().unwrap()).unwrap();
        fs::write(&orphan, b"left by a crash").unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        // Placed after the start, its row not committed yet when the scan runs.
        let mut staging = store.staging(None, false).unwrap();
        staging.write(b"new").unwrap();
        let fresh = store.commit(staging.finish().unwrap()).unwrap();
        assert_eq!(store.remove_unreferenced(&HashSet::new()).unwrap(), 1);
        assert!(!orphan.exists() && store.path(&fresh).exists());
        assert!(store.placed_during_scan.lock().is_none(), "names are no longer collected");
    }

    #[test]
    fn large_uploads_are_written_by_the_writer_thread_intact() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let data: Vec<u8> =
            (0..(3 * super::super::staging::BUFFER_BYTES + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        let mut s = store.staging(None, true).unwrap();
        for piece in data.chunks(65_537) {
            s.write(piece).unwrap();
        }
        let staged = s.finish().unwrap();
        assert_eq!((staged.size, staged.md5), (data.len() as u64, super::super::checksum::md5(&data)));
        let name = store.commit(staged).unwrap();
        assert!(fs::read(store.path(&name)).unwrap() == data);
    }

    #[test]
    fn stage_commit_duplicate_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let mut s = store.staging(Some(Algorithm::Crc32), true).unwrap();
        s.write(b"hello ").unwrap();
        s.write(b"world").unwrap();
        let staged = s.finish().unwrap();
        assert_eq!(staged.size, 11);
        assert_eq!(staged.md5, super::super::checksum::md5(b"hello world"));
        assert_eq!(staged.checksum.as_ref().unwrap().1, Algorithm::Crc32.digest(b"hello world"));
        let name = store.commit(staged).unwrap();
        assert_eq!(fs::read(store.path(&name)).unwrap(), b"hello world");
        let copy = store.duplicate(&name).unwrap();
        assert_ne!(copy, name);
        assert_eq!(fs::read(store.path(&copy)).unwrap(), b"hello world");
        // An abandoned staging file leaves nothing in tmp.
        let mut s = store.staging(None, false).unwrap();
        s.write(b"x").unwrap();
        drop(s.finish().unwrap());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // The next start's sweep removes what no row refers to (this process's own files are
        // never taken for orphans: see the test below).
        let store = FileStore::open(dir.path()).unwrap();
        let keep: HashSet<String> = [name.clone()].into();
        assert_eq!(store.remove_unreferenced(&keep).unwrap(), 1);
        assert!(store.path(&name).exists() && !store.path(&copy).exists());
    }
}
