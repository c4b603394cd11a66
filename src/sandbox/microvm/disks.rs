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
//! A writable mount (the job that compiles a code version's bytecode into its directory) gets a
//! private image in the VM's directory with room to grow; what the guest left in it is copied
//! back into the host directory when the VM is stopped after a clean shutdown (`write_back`):
//! unlike a bind mount, the host sees the writes only then.

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
    /// For a writable mount, the host directory its content goes back to.
    pub write_back: Option<PathBuf>,
}

/// The disks for `mounts`: read-only images are shared under `root` (built if they do not exist
/// yet), writable ones are private to the VM whose directory is `vm_dir`.
pub fn prepare(root: &Path, vm_dir: &Path, mke2fs: &Path, mounts: &[Mount]) -> Result<Vec<Disk>, String> {
    let mut disks = Vec::new();
    for (i, mount) in mounts.iter().enumerate() {
        if !mount.target.starts_with('/') || mount.target.chars().any(|c| c.is_whitespace() || c == '\'') {
            return Err(format!(
                "cannot mount at {:?} in a microVM: the target must be an absolute path without spaces or quotes",
                mount.target
            ));
        }
        let host = Path::new(&mount.host_path);
        let serial = format!("agentcore-m{i}");
        let target = mount.target.clone();
        if mount.read_only {
            disks.push(Disk { image: image_for(root, mke2fs, host)?, serial, target, write_back: None });
        } else {
            let image = vm_dir.join(format!("{serial}.ext4"));
            let tree = Tree::scan(host).map_err(|e| format!("cannot read {}: {e}", host.display()))?;
            // Sparse: the room to grow costs nothing until the guest writes.
            build(mke2fs, host, &image, tree.inodes() * 4 + 4096, tree.size_kib() * 2 + 1024 * 1024)?;
            disks.push(Disk { image, serial, target, write_back: Some(host.to_path_buf()) });
        }
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
    build(mke2fs, dir, &staged, tree.inodes(), tree.size_kib())?;
    std::fs::write(root.join(format!("{place}.source")), dir.as_os_str().as_encoded_bytes())
        .and_then(|_| std::fs::rename(&staged, &image))
        .map_err(|e| format!("cannot store the disk image of {}: {e}", dir.display()))?;
    Ok(image)
}

/// Writes `dir` as an ext4 image of `size_kib` with room for `inodes` files at `image`.
fn build(mke2fs: &Path, dir: &Path, image: &Path, inodes: u64, size_kib: u64) -> Result<(), String> {
    let _ = std::fs::remove_file(image);
    let owner = std::fs::metadata(dir).map(|m| format!("{}:{}", m.uid(), m.gid())).unwrap_or_else(|_| "0:0".into());
    let output = std::process::Command::new(mke2fs)
        .args(["-q", "-F", "-t", "ext4", "-O", "^has_journal", "-b", "4096", "-m", "0", "-I", "256"])
        .args(["-N", &inodes.to_string(), "-E", &format!("root_owner={owner}"), "-L", "agentcore-code"])
        .arg("-d")
        .arg(dir)
        .arg(image)
        .arg(format!("{size_kib}k"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", mke2fs.display()))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(image);
        return Err(format!(
            "mke2fs could not turn {} into a disk image for the VM: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if !dir.join("lost+found").exists() {
        drop_lost_and_found(mke2fs, image)?;
    }
    Ok(())
}

/// Copies what a stopped guest left on a writable disk back into the host directory: files new
/// or changed in the image replace the host's, what the guest removed is removed. The image is
/// read with debugfs (`rdump`, which keeps modes, owners where permitted, and times) into a
/// directory beside the host one, so every file moves into place with a rename.
pub fn write_back(mke2fs: &Path, image: &Path, host: &Path) -> Result<(), String> {
    let parent = host.parent().ok_or_else(|| format!("{} has no parent directory", host.display()))?;
    let dump = tempfile::Builder::new()
        .prefix(".agentcore-write-back-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot write back into {}: {e}", host.display()))?;
    let debugfs = mke2fs.with_file_name("debugfs");
    let output = std::process::Command::new(&debugfs)
        .arg("-R")
        .arg(format!("rdump / {}", dump.path().display()))
        .arg(image)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", debugfs.display()))?;
    if let Some(complaint) = complaint(&output.stderr) {
        return Err(format!("debugfs could not read the VM's disk for {}: {complaint}", host.display()));
    }
    let _ = std::fs::remove_dir(dump.path().join("lost+found"));
    sync_tree(dump.path(), host).map_err(|e| format!("cannot write back into {}: {e}", host.display()))
}

/// Makes `to` hold what `from` holds, moving `from`'s files.
fn sync_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        seen.insert(entry.file_name());
        let kind = entry.file_type()?;
        let existing = std::fs::symlink_metadata(&target).ok();
        if kind.is_dir() {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                std::fs::remove_file(&target)?;
            }
            if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                std::fs::create_dir(&target)?;
            }
            std::fs::set_permissions(&target, std::fs::metadata(&source)?.permissions())?;
            sync_tree(&source, &target)?;
        } else {
            if existing.as_ref().is_some_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&target)?;
            }
            std::fs::rename(&source, &target)?;
        }
    }
    for entry in std::fs::read_dir(to)? {
        let entry = entry?;
        if !seen.contains(&entry.file_name()) {
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// debugfs exits 0 even when a request fails; a line on stderr beyond its banner says so.
fn complaint(stderr: &[u8]) -> Option<String> {
    let said = String::from_utf8_lossy(stderr);
    said.lines().find(|l| !l.starts_with("debugfs ") && !l.trim().is_empty()).map(str::to_string)
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
    match complaint(&output.stderr) {
        Some(complaint) => {
            let _ = std::fs::remove_file(image);
            Err(format!("debugfs could not finish the disk image for the VM: {complaint}"))
        }
        None => Ok(()),
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
    fn odd_targets_are_refused() {
        let ro = |target: &str| Mount { host_path: "/nowhere".into(), target: target.into(), read_only: true };
        let root = Path::new("/nonexistent");
        for target in ["var/task", "/a b", "/it's"] {
            let err = prepare(root, root, Path::new("/bin/false"), &[ro(target)]).unwrap_err();
            assert!(err.contains("absolute path without spaces or quotes"), "{err}");
        }
    }

    #[test]
    fn a_writable_disk_writes_back_additions_changes_and_removals() {
        let Some(mke2fs) = mke2fs() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let code = tmp.path().join("code");
        std::fs::create_dir_all(code.join("gone")).unwrap();
        std::fs::write(code.join("main.py"), "print(1)\n").unwrap();
        std::fs::write(code.join("gone/x"), "x").unwrap();
        let vm = tmp.path().join("vm");
        std::fs::create_dir_all(&vm).unwrap();
        let mount = Mount { host_path: code.display().to_string(), target: "/var/task".into(), read_only: false };
        let disks = prepare(&tmp.path().join("disks"), &vm, &mke2fs, &[mount]).unwrap();
        assert_eq!(disks[0].write_back.as_deref(), Some(code.as_path()));
        assert!(disks[0].image.starts_with(&vm), "a writable image is the VM's own");
        // What a guest would do, done with debugfs on the unmounted image.
        let script = tmp.path().join("edit");
        let pyc = tmp.path().join("main.pyc");
        std::fs::write(&pyc, b"\x00bytecode").unwrap();
        std::fs::write(
            &script,
            format!("mkdir __pycache__\nwrite {} __pycache__/main.pyc\nunlink gone/x\nrmdir gone\n", pyc.display()),
        )
        .unwrap();
        let edit = std::process::Command::new(mke2fs.with_file_name("debugfs"))
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(&disks[0].image)
            .output()
            .unwrap();
        assert!(edit.status.success(), "{edit:?}");
        write_back(&mke2fs, &disks[0].image, &code).unwrap();
        assert_eq!(std::fs::read(code.join("__pycache__/main.pyc")).unwrap(), b"\x00bytecode");
        assert_eq!(std::fs::read_to_string(code.join("main.py")).unwrap(), "print(1)\n");
        assert!(!code.join("gone").exists() && !code.join("lost+found").exists());
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".agentcore"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
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
        let vm = tmp.path();
        let first = prepare(&root, vm, &mke2fs, std::slice::from_ref(&mount)).unwrap();
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
        assert_eq!(prepare(&root, vm, &mke2fs, std::slice::from_ref(&mount)).unwrap(), first, "built once");
        std::fs::write(code.join("main.py"), "print(2)\n").unwrap();
        let second = prepare(&root, vm, &mke2fs, std::slice::from_ref(&mount)).unwrap();
        assert_ne!(second[0].image, first[0].image);
        assert!(!first[0].image.exists(), "the image of the old content was not removed");
        std::fs::remove_dir_all(&code).unwrap();
        std::fs::create_dir_all(tmp.path().join("other")).unwrap();
        let other = Mount { host_path: tmp.path().join("other").display().to_string(), ..mount };
        prepare(&root, vm, &mke2fs, &[other]).unwrap();
        assert!(!second[0].image.exists(), "the image of a removed directory was not removed");
    }
}
