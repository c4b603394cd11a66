//! Host directories for a guest (a code deployment's unpacked zip, mounted at /var/task): each
//! becomes a read-only ext4 disk image, built once per directory content with `mke2fs -d` and
//! shared by every VM that mounts it; the guest's init mounts it read-only by its disk serial.
//!
//! Why a disk image and not a shared folder:
//! - virtio-9p (`-virtfs`) needs the guest kernel's 9P client, and the distribution kernel the
//!   guest boots (Debian's cloud kernel) is built without it (`CONFIG_NET_9P` is not set);
//! - virtiofs needs a virtiofsd daemon per VM (privileged to sandbox itself) and guest memory
//!   shared with it, more moving parts per session than the backend has;
//! - ext4 is built into that kernel and virtio-blk is one module; QEMU opens a `readonly=on` drive
//!   with a shared lock, so concurrent VMs use one image; and a prepared version's directory does
//!   not change, so a copy shows exactly what a bind mount would.
//!
//! Writable mounts are refused: a disk image would not write back to the host directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sandbox::Mount;

/// A host directory as a disk for one VM.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub image: PathBuf,
    /// The virtio-blk serial the guest finds the disk by (`/sys/block/vdX/serial`).
    pub serial: String,
    /// Where the guest mounts it.
    pub target: String,
}

/// The disks for `mounts`, building the images that do not exist yet under `root`.
pub fn prepare(root: &Path, mke2fs: &Path, mounts: &[Mount]) -> Result<Vec<Disk>, String> {
    let mut disks = Vec::new();
    for (i, mount) in mounts.iter().enumerate() {
        if !mount.read_only {
            return Err(format!(
                "the microVM backend mounts host directories read-only only ({} at {} asks for write access); \
                 serve with --sandbox docker for that",
                mount.host_path, mount.target
            ));
        }
        if !mount.target.starts_with('/') || mount.target.chars().any(|c| c.is_whitespace() || c == '\'') {
            return Err(format!(
                "cannot mount at {:?} in a microVM: the target must be an absolute path without spaces or quotes",
                mount.target
            ));
        }
        let image = image_for(root, mke2fs, Path::new(&mount.host_path))?;
        disks.push(Disk { image, serial: format!("agentcore-m{i}"), target: mount.target.clone() });
    }
    Ok(disks)
}

/// The image of `dir` as it is now (built if needed). Images of directories that no longer exist,
/// or of an older content of this one, are removed (a VM still using one keeps its open file).
fn image_for(root: &Path, mke2fs: &Path, dir: &Path) -> Result<PathBuf, String> {
    let tree = Tree::scan(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let place = hex::encode(&Sha256::digest(dir.as_os_str().as_encoded_bytes())[..6]);
    let image = root.join(format!("{place}-{}.ext4", &tree.fingerprint[..12]));
    if image.exists() {
        return Ok(image);
    }
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    collect_garbage(root, &place);
    let staged = root.join(format!(".{place}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staged);
    let owner = std::fs::metadata(dir).map(|m| format!("{}:{}", m.uid(), m.gid())).unwrap_or_else(|_| "0:0".into());
    let output = std::process::Command::new(mke2fs)
        .args(["-q", "-F", "-t", "ext4", "-O", "^has_journal", "-b", "4096", "-m", "0", "-I", "256"])
        .args(["-N", &tree.inodes().to_string(), "-E", &format!("root_owner={owner}"), "-L", "agentcore-code"])
        .arg("-d")
        .arg(dir)
        .arg(&staged)
        .arg(format!("{}k", tree.size_kib()))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", mke2fs.display()))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&staged);
        return Err(format!(
            "mke2fs could not turn {} into a disk image for the VM: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if !dir.join("lost+found").exists() {
        drop_lost_and_found(mke2fs, &staged)?;
    }
    std::fs::write(root.join(format!("{place}.source")), dir.as_os_str().as_encoded_bytes())
        .and_then(|_| std::fs::rename(&staged, &image))
        .map_err(|e| format!("cannot store the disk image of {}: {e}", dir.display()))?;
    Ok(image)
}

/// mke2fs always creates /lost+found; a bind mount of the directory has none, and an agent that
/// lists its code directory should see the same entries in both backends. debugfs (same package as
/// mke2fs, same directory) removes it from the unmounted image.
fn drop_lost_and_found(mke2fs: &Path, image: &Path) -> Result<(), String> {
    let debugfs = mke2fs.with_file_name("debugfs");
    let output = std::process::Command::new(&debugfs)
        .args(["-w", "-R", "rmdir lost+found"])
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", debugfs.display()))?;
    // debugfs exits 0 even when a request fails; what it says on stderr beyond its banner tells.
    let said = String::from_utf8_lossy(&output.stderr);
    match said.lines().find(|l| !l.starts_with("debugfs ")) {
        Some(complaint) if !complaint.trim().is_empty() => {
            let _ = std::fs::remove_file(image);
            Err(format!("debugfs could not finish the disk image for the VM: {complaint}"))
        }
        _ => Ok(()),
    }
}

/// Removes images of `place` (an older content) and of directories that are gone.
fn collect_garbage(root: &Path, place: &str) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((owner, _)) = name.strip_suffix(".ext4").and_then(|n| n.split_once('-')) else { continue };
        let source = std::fs::read(root.join(format!("{owner}.source"))).ok();
        let gone = source.is_none_or(|s| !Path::new(&*String::from_utf8_lossy(&s)).exists());
        if owner == place || gone {
            let _ = std::fs::remove_file(entry.path());
            if gone {
                let _ = std::fs::remove_file(root.join(format!("{owner}.source")));
            }
        }
    }
}

/// What a directory holds, enough to size its image and to notice a change.
struct Tree {
    bytes: u64,
    entries: u64,
    fingerprint: String,
}

impl Tree {
    fn scan(dir: &Path) -> std::io::Result<Tree> {
        let mut tree = Tree { bytes: 0, entries: 1, fingerprint: String::new() };
        let mut hash = Sha256::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(at) = stack.pop() {
            let mut children: Vec<PathBuf> =
                std::fs::read_dir(&at)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
            children.sort();
            for child in children {
                let meta = std::fs::symlink_metadata(&child)?;
                let rel = child.strip_prefix(dir).unwrap_or(&child);
                hash.update(rel.as_os_str().as_encoded_bytes());
                hash.update(format!("\0{}\0{}\0{}\0{}\0", meta.mode(), meta.len(), meta.mtime(), meta.mtime_nsec()));
                tree.entries += 1;
                // Every file and directory takes whole 4 KiB blocks.
                tree.bytes += meta.len().div_ceil(4096).max(1) * 4096;
                if meta.is_dir() {
                    stack.push(child);
                }
            }
        }
        tree.fingerprint = hex::encode(hash.finalize());
        Ok(tree)
    }

    fn inodes(&self) -> u64 {
        self.entries + self.entries / 8 + 64
    }

    /// Data, inode tables (256 bytes each), block-group metadata and a margin for directory and
    /// extent blocks.
    fn size_kib(&self) -> u64 {
        let bytes = self.bytes + self.inodes() * 256;
        (bytes + bytes / 8) / 1024 + 8 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mke2fs() -> Option<PathBuf> {
        ["/usr/sbin/mke2fs", "/sbin/mke2fs"].iter().map(PathBuf::from).find(|p| p.exists())
    }

    #[test]
    fn writable_or_odd_targets_are_refused() {
        let ro = |target: &str, read_only| Mount { host_path: "/nowhere".into(), target: target.into(), read_only };
        let root = Path::new("/nonexistent");
        let err = prepare(root, Path::new("/bin/false"), &[ro("/var/task", false)]).unwrap_err();
        assert!(err.contains("read-only") && err.contains("--sandbox docker"), "{err}");
        assert!(prepare(root, Path::new("/bin/false"), &[ro("var/task", true)]).is_err());
        assert!(prepare(root, Path::new("/bin/false"), &[ro("/a b", true)]).is_err());
    }

    #[test]
    fn one_image_per_content_and_old_ones_go() {
        let Some(mke2fs) = mke2fs() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let code = tmp.path().join("code");
        std::fs::create_dir_all(code.join("pkg")).unwrap();
        std::fs::write(code.join("main.py"), "print(1)\n").unwrap();
        std::fs::write(code.join("pkg/big.bin"), vec![7u8; 300_000]).unwrap();
        let root = tmp.path().join("disks");
        let mount = Mount { host_path: code.display().to_string(), target: "/var/task".into(), read_only: true };
        let first = prepare(&root, &mke2fs, std::slice::from_ref(&mount)).unwrap();
        assert_eq!(first[0].serial, "agentcore-m0");
        assert!(first[0].image.exists());
        let listing = std::process::Command::new(mke2fs.with_file_name("debugfs"))
            .args(["-R", "ls -l /"])
            .arg(&first[0].image)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("main.py") && listing.contains("pkg"), "{listing}");
        assert!(!listing.contains("lost+found"), "{listing}");
        assert_eq!(prepare(&root, &mke2fs, std::slice::from_ref(&mount)).unwrap(), first, "built once");
        std::fs::write(code.join("main.py"), "print(2)\n").unwrap();
        let second = prepare(&root, &mke2fs, std::slice::from_ref(&mount)).unwrap();
        assert_ne!(second[0].image, first[0].image);
        assert!(!first[0].image.exists(), "the image of the old content was not removed");
        std::fs::remove_dir_all(&code).unwrap();
        std::fs::create_dir_all(tmp.path().join("other")).unwrap();
        let other = Mount { host_path: tmp.path().join("other").display().to_string(), ..mount };
        prepare(&root, &mke2fs, &[other]).unwrap();
        assert!(!second[0].image.exists(), "the image of a removed directory was not removed");
    }
}
