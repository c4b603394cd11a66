//! A guest's root filesystem: the image from the local Docker image store (`docker save`), its
//! layers applied in order (whiteouts honoured), plus our `/init`, a static busybox and the virtio
//! modules, written as one uncompressed initramfs (cpio "newc"). Built once per (image id, kernel,
//! init) and cached; concurrent builds of one image wait for each other.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::host::Kernel;

/// The guest's init (busybox sh).
pub const INIT: &str = include_str!("init.sh");
/// The guest's command server, one run per connection (`commands`).
pub const EXEC: &str = include_str!("exec.sh");
/// Runs a command as the agent's user (init.sh and exec.sh call it).
const AS_AGENT: &str = include_str!("as-agent.sh");
/// Our scripts under `/.agentcore` (name, text): written into every root filesystem, and part of
/// its cache key.
const SCRIPTS: &[(&str, &str)] = &[("exec.sh", EXEC), ("as-agent", AS_AGENT)];
/// Modules the init loads, relative to `/lib/modules/VERSION/kernel`, in load order.
const MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_mmio.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "drivers/firmware/qemu_fw_cfg.ko",
    // Host directories arrive as disks (`disks`); the control port asks the guest to stop.
    "drivers/block/virtio_blk.ko",
    "drivers/char/virtio_console.ko",
];
/// Changes whenever what a build writes changes in a way the init's text does not show.
const FORMAT: &str = "2: virtio_blk, virtio_console, passwd and group in image.json, no image /dev";

/// What the image says to run, from its configuration.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub workdir: String,
    pub user: String,
    /// The image's /etc/passwd and /etc/group (empty when it has none), to resolve `user` and the
    /// spec's user as Docker does.
    #[serde(default)]
    pub passwd: String,
    #[serde(default)]
    pub group: String,
}

/// A built root filesystem.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub initrd: PathBuf,
    pub config: ImageConfig,
}

/// The cache directory of `image_id` booted with `kernel`.
fn cache_dir(root: &Path, image_id: &str, kernel: &Kernel) -> PathBuf {
    let mut h = Sha256::new();
    h.update(image_id.as_bytes());
    h.update(b"\0");
    h.update(kernel.version.as_bytes());
    h.update(b"\0");
    h.update(INIT.as_bytes());
    h.update(b"\0");
    for (_, text) in SCRIPTS {
        h.update(text.as_bytes());
        h.update(b"\0");
    }
    h.update(FORMAT.as_bytes());
    let short = image_id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    root.join(format!("{short}-{}", &hex::encode(h.finalize())[..12]))
}

/// The cached root filesystem of `image_id`, building it first if needed.
pub async fn get(
    docker: &bollard::Docker,
    root: &Path,
    image_id: &str,
    kernel: &Kernel,
    busybox: &Path,
) -> Result<Rootfs, String> {
    let dir = cache_dir(root, image_id, kernel);
    if let Some(found) = cached(&dir) {
        return Ok(found);
    }
    let inspect = docker.inspect_image(image_id).await.map_err(|e| format!("cannot inspect image {image_id}: {e}"))?;
    let c = inspect.config.unwrap_or_default();
    let config = ImageConfig {
        env: c.env.unwrap_or_default(),
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        workdir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        passwd: String::new(),
        group: String::new(),
    };
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(root)
        .map_err(|e| format!("cannot create a build directory under {}: {e}", root.display()))?;
    let save = work.path().join("image.tar");
    let t0 = std::time::Instant::now();
    {
        let mut file = std::fs::File::create(&save).map_err(|e| e.to_string())?;
        let mut stream = docker.export_image(image_id);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("cannot export image {image_id} from Docker: {e}"))?;
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
    }
    let (work_path, kernel, busybox) = (work.path().to_path_buf(), kernel.clone(), busybox.to_path_buf());
    let dir2 = dir.clone();
    tokio::task::spawn_blocking(move || build(&work_path, &dir2, &kernel, &busybox, config))
        .await
        .map_err(|e| e.to_string())??;
    tracing::info!(image = image_id, ms = t0.elapsed().as_millis() as u64, dir = %dir.display(), "built microVM root filesystem");
    cached(&dir).ok_or_else(|| format!("the root filesystem of {image_id} vanished after its build"))
}

fn cached(dir: &Path) -> Option<Rootfs> {
    let initrd = dir.join("initrd.cpio");
    let config = serde_json::from_slice(&std::fs::read(dir.join("image.json")).ok()?).ok()?;
    initrd.exists().then_some(Rootfs { initrd, config })
}

fn build(work: &Path, dir: &Path, kernel: &Kernel, busybox: &Path, mut config: ImageConfig) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let saved = work.join("saved");
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| io("rootfs", e))?;
    let file = std::fs::File::open(work.join("image.tar")).map_err(|e| io("image.tar", e))?;
    tar::Archive::new(file).unpack(&saved).map_err(|e| io("unpacking the saved image", e))?;
    let _ = std::fs::remove_file(work.join("image.tar"));
    let manifest: Vec<HashMap<String, serde_json::Value>> =
        serde_json::from_slice(&std::fs::read(saved.join("manifest.json")).map_err(|e| io("manifest.json", e))?)
            .map_err(|e| format!("manifest.json: {e}"))?;
    let layers: Vec<String> = manifest
        .first()
        .and_then(|m| m.get("Layers"))
        .and_then(|l| l.as_array())
        .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .ok_or("the saved image has no layer list")?;
    for layer in &layers {
        apply_layer(&saved.join(layer), &rootfs)?;
    }
    let _ = std::fs::remove_dir_all(&saved);
    // The image's /dev is not the sandbox's (Docker mounts its own over it). Device nodes in a
    // layer come out of the unpacker as empty regular files, and a regular /dev/console in the
    // initramfs replaces the kernel's: the init and the agent would write their output into it
    // instead of the serial console (seen with debootstrap-built images).
    remove_any(&rootfs.join("dev"));
    config.passwd = image_file(&rootfs, "etc/passwd");
    config.group = image_file(&rootfs, "etc/group");
    // Ours: the init, busybox and the virtio modules.
    let ours = rootfs.join(".agentcore");
    std::fs::create_dir_all(ours.join("modules")).map_err(|e| io(".agentcore", e))?;
    std::fs::copy(busybox, ours.join("busybox")).map_err(|e| io("busybox", e))?;
    for module in MODULES {
        let from = kernel.modules.join("kernel").join(module);
        let name = Path::new(module).file_name().unwrap_or_default();
        std::fs::copy(&from, ours.join("modules").join(name)).map_err(|e| io(&from.display().to_string(), e))?;
    }
    let init = rootfs.join("init");
    let _ = std::fs::remove_file(&init);
    std::fs::write(&init, INIT).map_err(|e| io("init", e))?;
    set_mode(&init, 0o755)?;
    for (name, text) in SCRIPTS {
        std::fs::write(ours.join(name), text).map_err(|e| io(name, e))?;
        set_mode(&ours.join(name), 0o755)?;
    }
    set_mode(&ours.join("busybox"), 0o755)?;
    // su runs its -c through a shell it finds by path, named by its last component: busybox
    // runs as sh only when called "sh".
    std::os::unix::fs::symlink("busybox", ours.join("sh")).map_err(|e| io(".agentcore/sh", e))?;
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        let _ = std::fs::create_dir_all(rootfs.join(d));
    }
    set_mode(&rootfs.join("tmp"), 0o1777)?;
    let staged = work.join("initrd.cpio");
    write_cpio(&rootfs, &staged).map_err(|e| io("writing the initramfs", e))?;
    let _ = std::fs::remove_dir_all(&rootfs);
    let config_json = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    std::fs::write(work.join("image.json"), config_json).map_err(|e| io("image.json", e))?;
    // Publish: a directory with both files, renamed into place (a concurrent builder's copy wins).
    let publish = work.join("publish");
    std::fs::create_dir_all(&publish).map_err(|e| io("publish", e))?;
    std::fs::rename(&staged, publish.join("initrd.cpio")).map_err(|e| io("publish", e))?;
    std::fs::rename(work.join("image.json"), publish.join("image.json")).map_err(|e| io("publish", e))?;
    if std::fs::rename(&publish, dir).is_err() && cached(dir).is_none() {
        return Err(format!("cannot publish the root filesystem at {}", dir.display()));
    }
    Ok(())
}

/// A regular file of the image (a symlink is not followed: it would name a file of the host).
fn image_file(rootfs: &Path, rel: &str) -> String {
    let path = rootfs.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned(),
        _ => String::new(),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One layer over the tree so far: `.wh.NAME` removes NAME, `.wh..wh..opq` empties its directory.
fn apply_layer(layer: &Path, rootfs: &Path) -> Result<(), String> {
    let file = std::fs::File::open(layer).map_err(|e| format!("{}: {e}", layer.display()))?;
    let mut archive = tar::Archive::new(file);
    archive.set_preserve_permissions(true);
    // Owners as in the image where we may set them (root); otherwise the files are ours.
    // SAFETY: geteuid has no side effects.
    archive.set_preserve_ownerships(unsafe { libc::geteuid() } == 0);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(|e| format!("layer {}: {e}", layer.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("layer {}: {e}", layer.display()))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            continue;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let parent = rootfs.join(path.parent().unwrap_or(Path::new("")));
        if name == ".wh..wh..opq" {
            if let Ok(children) = std::fs::read_dir(&parent) {
                for child in children.flatten() {
                    remove_any(&child.path());
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            remove_any(&parent.join(hidden));
            continue;
        }
        // A file replacing a directory (or the reverse) or a symlink: remove what was there, so
        // nothing is written through an old symlink.
        let target = rootfs.join(&path);
        if let Ok(existing) = std::fs::symlink_metadata(&target) {
            let is_dir = entry.header().entry_type().is_dir();
            if !(is_dir && existing.is_dir()) {
                remove_any(&target);
            }
        }
        entry.unpack_in(rootfs).map_err(|e| {
            let cause = std::error::Error::source(&e).map(|c| format!(" ({c})")).unwrap_or_default();
            format!("unpacking {} of {}: {e}{cause}", path.display(), layer.display())
        })?;
    }
    Ok(())
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Writes `root` as an uncompressed cpio "newc" archive (what the kernel unpacks as initramfs).
pub(super) fn write_cpio(root: &Path, out: &Path) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut ino = 1u32;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let meta = std::fs::symlink_metadata(&full)?;
        if !rel.as_os_str().is_empty() {
            write_entry(&mut w, &rel, &full, &meta, ino)?;
            ino += 1;
        }
        if meta.is_dir() {
            let mut children: Vec<PathBuf> =
                std::fs::read_dir(&full)?.flatten().map(|e| rel.join(e.file_name())).collect();
            children.sort();
            children.reverse();
            stack.extend(children);
        }
    }
    cpio_header(&mut w, "TRAILER!!!", 0, 0, 0, 0, 1, 0, 0, (0, 0))?;
    w.flush()
}

fn write_entry(w: &mut impl Write, rel: &Path, full: &Path, meta: &std::fs::Metadata, ino: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let name = rel.to_string_lossy();
    let mode = meta.mode();
    let ft = meta.file_type();
    // A symlink's data is its target; a file's is streamed below.
    let data: Vec<u8> =
        if ft.is_symlink() { std::fs::read_link(full)?.to_string_lossy().as_bytes().to_vec() } else { Vec::new() };
    let size = if ft.is_file() { meta.len() } else { data.len() as u64 };
    let nlink = if ft.is_dir() { 2 } else { 1 };
    // Linux's dev_t: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31.
    let rdev = meta.rdev();
    let rmaj = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let rmin = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    cpio_header(w, &name, ino, mode, meta.uid(), meta.gid(), nlink, meta.mtime().max(0) as u32, size, (rmaj, rmin))?;
    if ft.is_file() {
        let mut f = std::fs::File::open(full)?;
        let copied = std::io::copy(&mut f, w)?;
        if copied != size {
            return Err(std::io::Error::other(format!("{} changed while archiving", full.display())));
        }
    } else {
        w.write_all(&data)?;
    }
    pad(w, size as usize)
}

#[allow(clippy::too_many_arguments)]
fn cpio_header(
    w: &mut impl Write,
    name: &str,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    size: u64,
    (rmaj, rmin): (u64, u64),
) -> std::io::Result<()> {
    let (rmaj, rmin) = (rmaj as u32, rmin as u32);
    let header = format!(
        "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}{:08x}{:08x}{rmaj:08x}{rmin:08x}{:08x}{:08x}",
        0,
        0,
        name.len() + 1,
        0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w, header.len() + name.len() + 1)
}

fn pad(w: &mut impl Write, len: usize) -> std::io::Result<()> {
    let rest = (4 - len % 4) % 4;
    w.write_all(&[0u8; 3][..rest])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_end_with_the_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), b"abcde").unwrap();
        std::os::unix::fs::symlink("etc/hostname", root.join("link")).unwrap();
        let out = dir.path().join("x.cpio");
        write_cpio(&root, &out).unwrap();
        let data = std::fs::read(&out).unwrap();
        assert_eq!(data.len() % 4, 0);
        assert!(data.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&data);
        for name in ["etc\0", "etc/hostname\0", "abcde", "link\0", "TRAILER!!!\0"] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn whiteouts_remove_what_lower_layers_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, files: &[(&str, &[u8])]| {
            let path = dir.path().join(name);
            let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
            for (p, data) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_cksum();
                b.append_data(&mut h, p, *data).unwrap();
            }
            b.finish().unwrap();
            path
        };
        let lower = make("l1.tar", &[("a/keep", b"1"), ("a/gone", b"2"), ("b/x", b"3")]);
        let upper = make("l2.tar", &[("a/.wh.gone", b""), ("b/.wh..wh..opq", b""), ("b/y", b"4")]);
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        apply_layer(&lower, &root).unwrap();
        apply_layer(&upper, &root).unwrap();
        assert!(root.join("a/keep").exists());
        assert!(!root.join("a/gone").exists());
        assert!(!root.join("b/x").exists());
        assert!(root.join("b/y").exists());
    }
}
