//! Direct code deployment: a zip of the agent's code and dependencies, unpacked once per runtime
//! version into a directory that its sessions mount read-only.
//!
//! Limits are the service's (250 MB zipped, 750 MB unzipped). The archive is untrusted: entries
//! that escape the directory, links, and zip bombs are refused with a message naming the entry,
//! and sizes are enforced on the bytes actually written, not on what the headers claim.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const MAX_ZIPPED_BYTES: u64 = 250 * 1000 * 1000;
pub const MAX_UNZIPPED_BYTES: u64 = 750 * 1000 * 1000;
/// Entries in one archive; far above any real dependency tree.
pub const MAX_ENTRIES: usize = 200_000;
/// An entry that inflates more than this many times (and to more than a MiB) is a zip bomb.
pub const MAX_COMPRESSION_RATIO: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub files: usize,
    pub bytes: u64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Unpack `zip` into `dest` (created; must not exist). On error `dest` is removed.
pub fn unpack(zip: &Path, dest: &Path) -> Result<Unpacked, String> {
    let result = unpack_into(zip, dest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

fn unpack_into(zip: &Path, dest: &Path) -> Result<Unpacked, String> {
    let zipped = std::fs::metadata(zip).map_err(|e| format!("cannot read the code archive: {e}"))?.len();
    if zipped > MAX_ZIPPED_BYTES {
        return Err(format!(
            "The code archive is {}, more than the {} a zipped code deployment may have.",
            mib(zipped),
            mib(MAX_ZIPPED_BYTES)
        ));
    }
    let file = File::open(zip).map_err(|e| format!("cannot read the code archive: {e}"))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("The code object is not a valid zip archive ({e}).",))?;
    if archive.len() > MAX_ENTRIES {
        return Err(format!("The code archive has {} entries, more than {MAX_ENTRIES}.", archive.len()));
    }
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let mut total = 0u64;
    let mut files = 0usize;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("The code archive is corrupt at entry {i} ({e})."))?;
        let name = entry.name().to_string();
        // The zip crate reads names as Windows paths: after a `\\?\` prefix a `/` separates
        // nothing, so `..` can hide in one "normal" component and reappear as a path here. What
        // counts is the path as this system will resolve it.
        let relative: PathBuf = entry.enclosed_name().filter(|p| stays_inside(p)).ok_or_else(|| {
            format!("The code archive entry '{name}' points outside the archive (path traversal); refused.")
        })?;
        if entry.is_symlink() {
            return Err(format!("The code archive entry '{name}' is a symbolic link; links are refused."));
        }
        let target = dest.join(&relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
            continue;
        }
        let (declared, compressed) = (entry.size(), entry.compressed_size().max(1));
        if declared > 1 << 20 && declared / compressed > MAX_COMPRESSION_RATIO {
            return Err(format!(
                "The code archive entry '{name}' inflates {}x ({} from {} bytes): refused as a zip bomb.",
                declared / compressed,
                mib(declared),
                compressed
            ));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let mut out = File::create(&target).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        // Copy at most what the remaining budget allows, whatever the header said.
        let budget = MAX_UNZIPPED_BYTES - total;
        let written = std::io::copy(&mut (&mut entry).take(budget + 1), &mut out)
            .map_err(|e| format!("The code archive entry '{name}' cannot be extracted ({e})."))?;
        total += written;
        if total > MAX_UNZIPPED_BYTES {
            return Err(format!(
                "The code archive unpacks to more than {}, the limit for a code deployment.",
                mib(MAX_UNZIPPED_BYTES)
            ));
        }
        out.flush().map_err(|e| e.to_string())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Keep the executable bit (scripts in bin/), nothing else.
            let mode = if entry.unix_mode().unwrap_or(0o644) & 0o111 != 0 { 0o755 } else { 0o644 };
            let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode));
        }
        files += 1;
    }
    Ok(Unpacked { files, bytes: total })
}

/// Whether `relative`, joined to a directory, names something inside it: only plain names (and
/// `.`), no `..`, no root, no prefix.
fn stays_inside(relative: &Path) -> bool {
    relative.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn make_zip(dir: &Path, entries: &[(&str, Vec<u8>)]) -> PathBuf {
        let path = dir.join("code.zip");
        let mut w = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn a_traversal_hidden_behind_a_windows_verbatim_prefix_is_refused() {
        // Found by the code_zip fuzz target: the zip crate took `\\?\\\\\` for a prefix and
        // `��a/../../evil.py` for one name, which this system resolves two levels up.
        let dir = tempfile::tempdir().unwrap();
        let name = "\\\\?\\\\\\\\\\\u{fffd}\u{fffd}a/../../evil.py";
        let zip = make_zip(dir.path(), &[("main.py", b"x".to_vec()), (name, b"x".to_vec())]);
        let dest = dir.path().join("deep").join("out");
        let err = unpack(&zip, &dest).unwrap_err();
        assert!(err.contains("path traversal"), "{err}");
        assert!(!dir.path().join("evil.py").exists() && !dir.path().join("deep").join("evil.py").exists());
        assert!(!dest.exists(), "a refused archive leaves no destination");
        // A name with Windows separators and no way out still unpacks where it says.
        let zip = make_zip(dir.path(), &[("pkg\\mod.py", b"y".to_vec())]);
        unpack(&zip, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("pkg").join("mod.py")).unwrap(), b"y");
    }

    #[test]
    fn unpacks_files_and_keeps_executable_bits() {
        let dir = tempfile::tempdir().unwrap();
        let zip = make_zip(dir.path(), &[("main.py", b"print(1)".to_vec()), ("bin/tool", b"#!/bin/sh".to_vec())]);
        let dest = dir.path().join("out");
        let got = unpack(&zip, &dest).unwrap();
        assert_eq!(got, Unpacked { files: 2, bytes: 17 });
        assert_eq!(std::fs::read(dest.join("main.py")).unwrap(), b"print(1)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(dest.join("bin/tool")).unwrap().permissions().mode() & 0o777, 0o755);
        }
    }

    #[test]
    fn refuses_traversal_corruption_and_bombs() {
        let dir = tempfile::tempdir().unwrap();
        let zip = make_zip(dir.path(), &[("../evil.py", b"x".to_vec())]);
        let err = unpack(&zip, &dir.path().join("a")).unwrap_err();
        assert!(err.contains("path traversal") && err.contains("../evil.py"), "{err}");
        assert!(!dir.path().join("a").exists(), "a failed unpack leaves nothing behind");

        std::fs::write(dir.path().join("code.zip"), b"not a zip").unwrap();
        let err = unpack(&dir.path().join("code.zip"), &dir.path().join("b")).unwrap_err();
        assert!(err.contains("not a valid zip"), "{err}");

        let zip = make_zip(dir.path(), &[("zeros.bin", vec![0u8; 20 << 20])]);
        let err = unpack(&zip, &dir.path().join("c")).unwrap_err();
        assert!(err.contains("zip bomb"), "{err}");
    }
}
