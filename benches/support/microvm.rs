//! The sessions benchmark's microVM rows (`serve --sandbox microvm`), measured in the same run as
//! the Docker rows they are compared with:
//! - cold start of a session of the fixture agent to its first response, against the floor of any
//!   VM here: the probe guest (the same kernel, a busybox initramfs) booted to userspace with the
//!   same accelerator, and against the Docker session's cold start;
//! - memory per idle session: the QEMU process's RSS (what the host pays), against the container's;
//! - a warm invoke through the emulator against the same VM's forwarded port directly.
//!
//! Skipped, with the reason, where the host lacks what the backend needs (`agentcore-local doctor`).
//! Under TCG (no usable KVM, as on this project's CI machines) a guest boots in seconds.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agentcore_local::sandbox::microvm::host::Host;
use agentcore_local::sandbox::microvm::probe;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{
    body_of, cold_starts, fixture_runtime, invoke_request, rss_kib, spawn_server_with_env, warm_calls, HttpClient,
    Presigned,
};

const COLD_STARTS: usize = 5;
const PROBE_BOOTS: usize = 3;
const WARM_CALLS: usize = 200;

/// What the Docker rows measured in the same run, for the ratios.
pub struct DockerFigures {
    pub cold_start_p50: Duration,
    pub container_mib: f64,
}

fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The VMs the backend keeps under `root`: (pid, [(guest port, where the host reaches it)]).
fn vms(root: &Path) -> Vec<(u32, Vec<(u16, SocketAddr)>)> {
    let Ok(dirs) = std::fs::read_dir(root.join("vms")) else { return Vec::new() };
    dirs.filter_map(|d| {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.ok()?.path().join("vm.json")).ok()?).ok()?;
        let ports: Vec<(u16, u16)> = serde_json::from_value(record["ports"].clone()).ok()?;
        let address: std::net::IpAddr = record["forward_address"].as_str()?.parse().ok()?;
        let ports = ports.into_iter().map(|(guest, local)| (guest, SocketAddr::new(address, local))).collect();
        Some((record["pid"].as_u64()? as u32, ports))
    })
    .collect()
}

pub fn rows(docker: Option<&DockerFigures>) -> Vec<String> {
    let host = Host::detect();
    if !host.ready() {
        return vec![format!("| microVM rows skipped: {} |", host.missing_message().replace('\n', " "))];
    }
    let accel = host.accel();
    let (Some(qemu), Some(kernel), Some(busybox)) = (&host.qemu, &host.kernel, &host.busybox) else {
        unreachable!("a ready host has QEMU, a kernel and busybox")
    };
    let work = tempfile::tempdir().unwrap();
    let mut boots: Vec<Duration> = (0..PROBE_BOOTS)
        .map(|_| probe::boots(qemu, &kernel.image, busybox, accel, work.path(), Duration::from_secs(120)).unwrap())
        .collect();

    let vm_root = work.path().join("vms-root");
    let (server, _) = spawn_server_with_env(
        &["--sandbox", "microvm", "--startup-timeout", "240", "--warm-pool", "0", "--max-tps-per-endpoint", "0"],
        &[("AGENTCORE_LOCAL_MICROVM_DIR", vm_root.as_os_str())],
    );
    // Stopped on drop (`Spawned`), also when a row panics: it must stop its VMs while their
    // records (in the temporary directory, removed after it) still exist.
    let mut server = server;
    let addr = server.addr;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (mut cold, qemu_mib, mut via, mut direct) = rt.block_on(async {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let arn_path = fixture_runtime(&client, addr, "bench_microvm").await;
        let echo = br#"{"action":"echo","n":1}"#;
        let cold = cold_starts(&client, addr, &arn_path, "bench-vm-", COLD_STARTS, echo, Duration::ZERO).await;
        // Idle sessions settle (the guest's page cache, QEMU's lazily touched memory).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let kept = vms(&vm_root);
        let qemu_mib =
            kept.iter().map(|(pid, _)| rss_kib(*pid) as f64 / 1024.0).sum::<f64>() / kept.len().max(1) as f64;

        // Warm: one session through the emulator, then the same VM's forwarded agent port.
        let session = format!("bench-vm-warm-{}", uuid::Uuid::new_v4());
        body_of(&client, invoke_request(addr, &arn_path, &session, echo)).await;
        let before: std::collections::HashSet<u32> = kept.iter().map(|(pid, _)| *pid).collect();
        let (_, ports) =
            vms(&vm_root).into_iter().find(|(pid, _)| !before.contains(pid)).expect("the warm session's VM");
        let local = ports.iter().find(|(guest, _)| *guest == 8080).expect("the agent's port forwarded").1;
        let warm = Presigned::new(invoke_request(addr, &arn_path, &session, echo), echo);
        let (via, mut direct) = warm_calls(&client, &warm, &[super::Straight::Plain(local)], WARM_CALLS).await;
        (cold, qemu_mib, via, direct.remove(0))
    });
    // SIGTERM, so the emulator stops every VM it started.
    server.stop();

    let (c50, b50) = (p50(&mut cold), p50(&mut boots));
    let (v50, d50) = (p50(&mut via), p50(&mut direct));
    let accel = accel.as_str();
    let mut rows = vec![
        format!(
            "| microVM ({accel}) cold start to first response p50 ({COLD_STARTS} sessions) | {:.0} ms | |",
            ms(c50)
        ),
        format!("| baseline: bare guest boot to userspace, same kernel and accelerator, p50 | {:.0} ms | |", ms(b50)),
        format!("| microVM cold start / bare guest boot (p50) | {:.2}x | |", ms(c50) / ms(b50)),
        format!("| memory per idle session: QEMU RSS (mean) | {qemu_mib:.1} MiB | |"),
        format!(
            "| microVM warm invoke via emulator / VM's forwarded port directly p50 | {:.0} / {:.0} us | |",
            v50.as_secs_f64() * 1e6,
            d50.as_secs_f64() * 1e6
        ),
    ];
    if let Some(docker) = docker {
        rows.push(format!(
            "| microVM cold start / Docker session cold start ({:.0} ms above), p50 | {:.1}x | |",
            ms(docker.cold_start_p50),
            ms(c50) / ms(docker.cold_start_p50)
        ));
        rows.push(format!(
            "| memory per idle session: QEMU RSS / container ({:.2} MiB above) | {:.0}x | |",
            docker.container_mib,
            qemu_mib / docker.container_mib
        ));
    }
    rows
}
