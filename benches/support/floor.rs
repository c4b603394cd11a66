//! The Docker floor: what a session's first response costs with nothing but the Docker Engine API
//! (create with a 127.0.0.1 port, or none, start, inspect, poll `/ping` until 200, one POST), for
//! the same container in the same run. The emulator's cold starts are measured against it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use super::{body_of, HttpClient};

/// The container a floor run starts: an image, and for a code-zip session the command, variables,
/// working directory and bind mounts the emulator gave its sandbox.
#[derive(Default, Clone)]
pub struct FloorContainer {
    pub image: String,
    /// A named network instead of Docker's default bridge: a user-defined network (which sandboxes
    /// need, to turn inter-container traffic off) costs Docker more per start, because it sets up
    /// its embedded DNS resolver in every container.
    pub network: Option<String>,
    /// Publish nothing and reach the container at its own bridge address, as the emulator does
    /// where the bridge is routable; else through a port published on 127.0.0.1 (for which Docker
    /// starts its userland proxy, a process per port, which then relays every request).
    pub unpublished: bool,
    /// Attach the network ahead of time: before the clock starts, a holder container (the same
    /// image, its agent on another port) is started on `network`, and the measured container joins
    /// its network namespace (`container:<holder>`) and is reached at the holder's address.
    /// Docker then creates no interface, bridge port or DNS resolver for the measured container:
    /// what a pool of ready network namespaces would save a sandbox's start. Implies `unpublished`.
    pub network_ahead: bool,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub workdir: Option<String>,
    /// `host:container[:ro]`, as Docker's `Binds`.
    pub binds: Option<Vec<String>>,
    /// The POST body of the first invocation.
    pub payload: &'static [u8],
}

impl FloorContainer {
    /// The emulator's sandbox as Docker reports it (image, command, variables, working directory,
    /// binds), on Docker's default bridge.
    pub async fn like(container: &str, payload: &'static [u8]) -> FloorContainer {
        let docker = bollard::Docker::connect_with_local_defaults().expect("Docker");
        let inspect = docker
            .inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .expect("inspect the emulator's sandbox");
        let config = inspect.config.unwrap_or_default();
        FloorContainer {
            image: config.image.expect("image"),
            network: None,
            unpublished: false,
            network_ahead: false,
            cmd: config.cmd,
            env: config.env,
            workdir: config.working_dir.filter(|w| !w.is_empty()),
            binds: inspect.host_config.and_then(|h| h.binds),
            payload,
        }
    }
}

/// `runs` first responses of fresh containers of `container`, one after another.
pub async fn docker_floor(client: &HttpClient, runs: usize, container: &FloorContainer) -> Vec<Duration> {
    let docker = bollard::Docker::connect_with_local_defaults().expect("Docker");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let holder = match container.network_ahead {
            true => Some(start_holder(&docker, container).await),
            false => None,
        };
        let unpublished = container.unpublished || holder.is_some();
        let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
        let body = ContainerCreateBody {
            image: Some(container.image.clone()),
            cmd: container.cmd.clone(),
            env: container.env.clone(),
            working_dir: container.workdir.clone(),
            // A container that joins another's namespace can neither expose nor publish ports.
            exposed_ports: holder.is_none().then(|| [("8080/tcp".to_string(), Default::default())].into()),
            host_config: Some(HostConfig {
                port_bindings: (!unpublished).then(|| [("8080/tcp".to_string(), Some(vec![binding]))].into()),
                network_mode: match &holder {
                    Some((holder_id, _)) => Some(format!("container:{holder_id}")),
                    None => container.network.clone(),
                },
                binds: container.binds.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let started = Instant::now();
        let id =
            docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await.unwrap().id;
        docker.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
        let inspect =
            docker.inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>).await.unwrap();
        let settings = inspect.network_settings.unwrap_or_default();
        let addr: SocketAddr = if let Some((_, holder_ip)) = &holder {
            SocketAddr::new(*holder_ip, 8080)
        } else if unpublished {
            format!("{}:8080", address_in(settings.networks).expect("container address")).parse().unwrap()
        } else {
            let port = settings
                .ports
                .and_then(|p| p.get("8080/tcp").cloned().flatten())
                .and_then(|b| b.first().and_then(|b| b.host_port.clone()))
                .expect("published port");
            format!("127.0.0.1:{port}").parse().unwrap()
        };
        loop {
            let ping = Request::get(format!("http://{addr}/ping")).body(Full::new(Bytes::new())).unwrap();
            if let Ok(resp) = client.request(ping).await {
                if resp.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let post = Request::post(format!("http://{addr}/invocations"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(container.payload)))
            .unwrap();
        let (status, body) = body_of(client, post).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        samples.push(started.elapsed());
        remove_floor_container(&docker, &id).await;
        if let Some((holder_id, _)) = holder {
            remove_floor_container(&docker, &holder_id).await;
        }
    }
    samples
}

/// A container's address on its (one) network.
fn address_in(
    networks: Option<std::collections::HashMap<String, bollard::models::EndpointSettings>>,
) -> Option<std::net::IpAddr> {
    networks.unwrap_or_default().into_values().find_map(|n| n.ip_address.filter(|a| !a.is_empty())?.parse().ok())
}

/// The holder of a network namespace made ahead of time (see `FloorContainer::network_ahead`): the
/// same image on `container.network`, its agent on port 8081 (the measured one takes 8080), up
/// and answering before it is returned with its address.
async fn start_holder(docker: &bollard::Docker, container: &FloorContainer) -> (String, std::net::IpAddr) {
    let mut env = container.env.clone().unwrap_or_default();
    env.push("PORT=8081".into());
    let body = ContainerCreateBody {
        image: Some(container.image.clone()),
        cmd: container.cmd.clone(),
        env: Some(env),
        working_dir: container.workdir.clone(),
        host_config: Some(HostConfig {
            network_mode: container.network.clone(),
            binds: container.binds.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await.unwrap().id;
    docker.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
    let inspect =
        docker.inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>).await.unwrap();
    let address = address_in(inspect.network_settings.unwrap_or_default().networks).expect("the holder's address");
    (id, address)
}

/// Remove a floor container, retrying: a forced removal can fail for a moment (fuse-overlayfs
/// still busy), and one such failure left a baseline container running after a run.
async fn remove_floor_container(docker: &bollard::Docker, id: &str) {
    let mut last_error = None;
    for _ in 0..10 {
        let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(id, Some(remove)).await {
            Ok(()) => return,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return,
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("warning: could not remove the floor container {id}: {last_error:?}; remove it with docker rm -f {id}");
}
