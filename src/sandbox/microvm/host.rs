//! What the host offers the microVM backend: QEMU, a guest kernel and its modules, a static
//! busybox for the guest's init, mke2fs (host directories reach a guest as ext4 disks), and whether KVM really works (not just whether `/dev/kvm` exists:
//! nested hosts may open it and still fail to run a stock guest kernel).

use std::path::{Path, PathBuf};

/// The Debian packages that provide what the backend needs.
pub const APT_QEMU: &str = "qemu-system-x86";
pub const APT_BUSYBOX: &str = "busybox-static";
pub const APT_KERNEL: &str = "linux-image-cloud-amd64";
pub const APT_E2FSPROGS: &str = "e2fsprogs";

/// Where the guest's init finds busybox on the host (Debian's busybox-static).
const BUSYBOX_CANDIDATES: &[&str] = &["/usr/bin/busybox", "/bin/busybox"];
/// Debian keeps mke2fs in /sbin, which a normal user's PATH may lack.
const MKE2FS_CANDIDATES: &[&str] = &["/usr/sbin/mke2fs", "/sbin/mke2fs"];

/// How guests are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's emulator (slow, works everywhere).
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// A guest kernel: the image QEMU boots and the modules tree of the same version.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub version: String,
    pub image: PathBuf,
    pub modules: PathBuf,
}

/// Everything found on the host, or what is missing.
#[derive(Debug, Clone)]
pub struct Host {
    pub qemu: Option<PathBuf>,
    pub kernel: Option<Kernel>,
    pub busybox: Option<PathBuf>,
    /// Builds the read-only disk a host directory (a code deployment) reaches the guest on.
    pub mke2fs: Option<PathBuf>,
    /// `Ok` when KVM can run guests here; otherwise why not.
    pub kvm: Result<(), String>,
}

impl Host {
    pub fn detect() -> Host {
        Host {
            qemu: find_qemu(),
            kernel: find_kernel(),
            busybox: find_busybox(),
            mke2fs: find_mke2fs(),
            kvm: Err(String::new()),
        }
        .with_kvm_checked()
    }

    /// KVM counts when the host offers it (`kvm_offered`) and a probe guest then boots with it
    /// (`probe`): a second or less on a real KVM host, skipped entirely where KVM is not offered.
    fn with_kvm_checked(mut self) -> Host {
        self.kvm = kvm_offered().and_then(|()| {
            let (Some(qemu), Some(kernel), Some(busybox)) = (&self.qemu, &self.kernel, &self.busybox) else {
                return Err("the probe guest needs QEMU, a guest kernel and busybox".into());
            };
            let work = tempfile::tempdir().map_err(|e| format!("no directory for the probe guest: {e}"))?;
            super::probe::boots(qemu, &kernel.image, busybox, Accel::Kvm, work.path(), super::probe::KVM_PROBE_TIMEOUT)
                .map(|_| ())
                .map_err(|why| format!("/dev/kvm opens, but {why}"))
        });
        self
    }

    /// The tools are all there (KVM aside: TCG works everywhere).
    pub fn ready(&self) -> bool {
        self.missing_packages().is_empty()
    }

    pub fn missing_packages(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.qemu.is_none() {
            missing.push(APT_QEMU);
        }
        if self.busybox.is_none() {
            missing.push(APT_BUSYBOX);
        }
        if self.kernel.is_none() {
            missing.push(APT_KERNEL);
        }
        if self.mke2fs.is_none() {
            missing.push(APT_E2FSPROGS);
        }
        missing
    }

    pub fn accel(&self) -> Accel {
        if self.kvm.is_ok() {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// What to run to install the missing pieces (empty when nothing is missing).
    pub fn install_command(&self) -> Option<String> {
        let missing = self.missing_packages();
        (!missing.is_empty()).then(|| format!("apt-get install -y --no-install-recommends {}", missing.join(" ")))
    }

    /// One sentence for errors: what is missing and how to get it.
    pub fn missing_message(&self) -> String {
        match self.install_command() {
            Some(cmd) => format!(
                "the microVM backend needs {} (Debian/Ubuntu: `{cmd}`; `agentcore-local doctor` checks again)",
                self.missing_packages().join(", ")
            ),
            None => String::new(),
        }
    }

    /// The report `agentcore-local doctor` prints.
    pub fn report(&self) -> String {
        let mut out = String::from("microVM sandboxes (--sandbox microvm):\n");
        let line =
            |ok: bool, what: &str, detail: String| format!("  [{}] {what}: {detail}\n", if ok { "ok" } else { "--" });
        out += &line(
            self.qemu.is_some(),
            "qemu-system-x86_64",
            self.qemu.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("missing ({APT_QEMU})")),
        );
        out += &line(
            self.kernel.is_some(),
            "guest kernel",
            self.kernel
                .as_ref()
                .map(|k| format!("{} ({}, modules {})", k.version, k.image.display(), k.modules.display()))
                .unwrap_or_else(|| format!("missing: no /boot/vmlinuz-* with its /lib/modules tree ({APT_KERNEL})")),
        );
        out += &line(
            self.busybox.is_some(),
            "static busybox (the guest's init)",
            self.busybox
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("missing or not static ({APT_BUSYBOX})")),
        );
        out += &line(
            self.mke2fs.is_some(),
            "mke2fs (code deployments' disks)",
            self.mke2fs
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("missing ({APT_E2FSPROGS})")),
        );
        out += &line(
            self.kvm.is_ok(),
            "KVM",
            match &self.kvm {
                Ok(()) => "usable: a probe guest booted with it; guests run with hardware virtualisation".to_string(),
                Err(why) => format!("not usable ({why}); guests run under QEMU's emulator (TCG), several times slower"),
            },
        );
        match self.install_command() {
            Some(cmd) => out += &format!("\nTo install what is missing (as root): {cmd}\n"),
            None => {
                out += &format!("\nReady: `serve --sandbox microvm` runs sessions with {}.\n", self.accel().as_str())
            }
        }
        out
    }
}

fn find_qemu() -> Option<PathBuf> {
    which("qemu-system-x86_64")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// `mke2fs` new enough for `-d` (populate from a directory: e2fsprogs 1.43, 2016).
fn find_mke2fs() -> Option<PathBuf> {
    which("mke2fs").or_else(|| MKE2FS_CANDIDATES.iter().map(PathBuf::from).find(|p| is_executable(p)))
}

/// A statically linked busybox: the guest has no libc of ours.
fn find_busybox() -> Option<PathBuf> {
    BUSYBOX_CANDIDATES.iter().map(PathBuf::from).find(|p| is_executable(p) && is_static_elf(p))
}

/// An ELF file without a program interpreter (PT_INTERP) is statically linked.
fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else { return false };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap_or_default()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        at + 4 <= data.len() && u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default()) != 3
    })
}

/// The newest `/boot/vmlinuz-VERSION` whose `/lib/modules/VERSION` has the virtio network driver.
fn find_kernel() -> Option<Kernel> {
    let mut found: Vec<Kernel> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            let modules = PathBuf::from("/lib/modules").join(&version);
            modules.join("kernel/drivers/net/virtio_net.ko").exists().then(|| Kernel {
                image: e.path(),
                modules,
                version,
            })
        })
        .collect();
    found.sort_by_key(|k| natural_key(&k.version));
    found.pop()
}

fn natural_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok()).collect()
}

/// KVM is offered when the CPU has hardware virtualisation (vmx/svm), the kvm_intel/kvm_amd
/// module is loaded and `/dev/kvm` opens. Nested PVM hosts (`kvm_pvm`) open `/dev/kvm` but cannot
/// run a stock guest kernel, so they are refused here already; the probe guest catches the rest.
fn kvm_offered() -> Result<(), String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> =
        cpuinfo.lines().find(|l| l.starts_with("flags")).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    let hardware = flags.iter().any(|f| *f == "vmx" || *f == "svm");
    if !hardware {
        return Err("the CPU offers no vmx/svm".into());
    }
    let module = ["kvm_intel", "kvm_amd"].iter().any(|m| Path::new("/sys/module").join(m).exists());
    if !module {
        return Err("neither kvm_intel nor kvm_amd is loaded".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// The host's TSC frequency in kHz (from /proc/cpuinfo), for the guest's command line: under
/// TCG a guest that calibrates its clock itself stalls for seconds.
pub fn tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?.split(':').nth(1)?.trim().parse().ok()?;
    Some((mhz * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        assert!(natural_key("6.1.0-9-amd64") < natural_key("6.1.0-57-cloud-amd64"));
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let host = Host {
            qemu: None,
            kernel: None,
            busybox: Some("/bin/busybox".into()),
            mke2fs: Some("/sbin/mke2fs".into()),
            kvm: Err("x".into()),
        };
        assert_eq!(host.missing_packages(), vec![APT_QEMU, APT_KERNEL]);
        assert!(host.install_command().unwrap().ends_with("qemu-system-x86 linux-image-cloud-amd64"));
        assert_eq!(host.accel(), Accel::Tcg);
    }
}
