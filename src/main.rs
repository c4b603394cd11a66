//! Command-line entry point: parses flags, starts the server, handles signals.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use agentcore_local::config::{self, AuthMode, Config, SandboxKind};
use agentcore_local::sandbox::Limits;
use agentcore_local::services::identity::issuer::{parse_pair, IssuerClient, IssuerConfig, IssuerUser};
use agentcore_local::sessions::{self, SessionConfig};
use agentcore_local::{images, local_client, server};

#[derive(Parser)]
#[command(
    name = "agentcore-local",
    version,
    about = "Amazon Bedrock AgentCore Runtime on your machine",
    long_about = "agentcore-local emulates the Amazon Bedrock AgentCore Runtime APIs (bedrock-agentcore-control and \
bedrock-agentcore) on one local port, so the unmodified AWS CLI, boto3 and AWS SDKs can create agent runtimes \
and invoke agents against it.\n\nQuick start:\n  agentcore-local serve\n  export AWS_ENDPOINT_URL=http://127.0.0.1:4599 \
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1\n  aws bedrock-agentcore-control list-agent-runtimes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the emulator (both API planes on one port).
    Serve(Box<ServeArgs>),
    /// Build or list the base images that code deployments (codeConfiguration) run in.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// List live and recent sessions: state, age, idle time, invocations, CPU, peak memory and
    /// the estimated AgentCore bill.
    Sessions {
        /// The emulator's URL [default: $AWS_ENDPOINT_URL, else http://127.0.0.1:4599].
        #[arg(long)]
        endpoint: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Internal: joins a VPC runtime's microVM connection (stdin and stdout, as QEMU's guestfwd
    /// rule hands it over) to that VM's relay, the abstract Unix socket NAME.
    #[command(hide = true)]
    VmPipe { name: String },
    /// Check what the sandbox backends need on this host (QEMU, a guest kernel, busybox, KVM for
    /// microVMs; Docker for containers) and print the command that installs what is missing.
    Doctor,
    /// Print an agent runtime's logs (every session's stdout and stderr), optionally following.
    Logs {
        /// The agent runtime id, e.g. my_agent-AbCdEf1234.
        runtime: String,
        /// Only this runtime session.
        #[arg(long)]
        session: Option<String>,
        /// Keep printing new lines as agents write them.
        #[arg(long, short)]
        follow: bool,
        /// The emulator's URL [default: $AWS_ENDPOINT_URL, else http://127.0.0.1:4599].
        #[arg(long)]
        endpoint: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build base images, e.g. `images build PYTHON_3_11` (from python:3.11-slim where a registry is
    /// reachable, otherwise from Debian packages; needs root and debootstrap then).
    Build {
        /// Runtimes to build (PYTHON_3_10 … PYTHON_3_14, NODE_22).
        #[arg(default_values_t = vec!["PYTHON_3_11".to_string()])]
        runtimes: Vec<String>,
        /// Rebuild even if the image exists.
        #[arg(long)]
        force: bool,
    },
    /// Show which runtimes have a base image.
    List,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port and prints it.
    #[arg(long, env = "AGENTCORE_LOCAL_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Directory for the SQLite database and other state [default: per-user data dir, e.g. ~/.local/share/agentcore-local].
    #[arg(long, env = "AGENTCORE_LOCAL_DATA_DIR", conflicts_with = "in_memory")]
    data_dir: Option<PathBuf>,
    /// Keep all state in memory; nothing is written to disk and nothing survives a restart.
    #[arg(long, env = "AGENTCORE_LOCAL_IN_MEMORY")]
    in_memory: bool,
    /// Region used for requests that carry no SigV4 credential scope (only with --auth off).
    #[arg(long, env = "AGENTCORE_LOCAL_REGION", default_value = config::DEFAULT_REGION)]
    region: String,
    /// Account id for the default credentials and for unsigned requests.
    #[arg(long, env = "AGENTCORE_LOCAL_ACCOUNT_ID", default_value = config::DEFAULT_ACCOUNT_ID)]
    account_id: String,
    /// Accepted credentials as ACCESS_KEY:SECRET[:ACCOUNT_ID]; repeatable (env: comma separated).
    /// Default: test:test.
    #[arg(long = "credentials", env = "AGENTCORE_LOCAL_CREDENTIALS", value_delimiter = ',')]
    credentials: Vec<String>,
    /// Also accept the static keys of your shared AWS credentials/config files (read locally, never sent anywhere).
    #[arg(long, env = "AGENTCORE_LOCAL_AWS_PROFILES")]
    aws_profiles: bool,
    /// verify: require valid SigV4 signatures; off: accept any request.
    #[arg(long, env = "AGENTCORE_LOCAL_AUTH", value_enum, default_value = "verify")]
    auth: AuthMode,
    /// Log filter, e.g. info, debug, agentcore_local=trace.
    #[arg(long, env = "AGENTCORE_LOCAL_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Where sessions run: docker (one container per session), microvm (one QEMU microVM per session;
    /// KVM where it truly works, otherwise QEMU's much slower emulator), auto (microvm where KVM
    /// works, else docker) or none (control plane only). `agentcore-local doctor` checks the host.
    #[arg(long, env = "AGENTCORE_LOCAL_SANDBOX", value_enum, default_value = "docker")]
    sandbox: SandboxKind,
    /// Active runtime sessions per account (ServiceQuotaExceededException beyond).
    #[arg(long, env = "AGENTCORE_LOCAL_MAX_SESSIONS", default_value_t = sessions::MAX_SESSIONS_PER_ACCOUNT)]
    max_sessions: usize,
    /// InvokeAgentRuntime requests per second per endpoint (ThrottlingException beyond); 0 disables.
    #[arg(long, env = "AGENTCORE_LOCAL_MAX_TPS_PER_ENDPOINT", default_value_t = sessions::MAX_TPS_PER_ENDPOINT)]
    max_tps_per_endpoint: u32,
    /// Memory limit of each session sandbox, in MiB.
    #[arg(long, env = "AGENTCORE_LOCAL_SANDBOX_MEMORY_MIB", default_value_t = 8192)]
    sandbox_memory_mib: i64,
    /// CPU limit of each session sandbox, in vCPUs.
    #[arg(long, env = "AGENTCORE_LOCAL_SANDBOX_CPUS", default_value_t = 2.0)]
    sandbox_cpus: f64,
    /// Process limit of each session sandbox.
    #[arg(long, env = "AGENTCORE_LOCAL_SANDBOX_PIDS", default_value_t = 1024)]
    sandbox_pids: i64,
    /// Run sandboxes with a read-only root filesystem (a tmpfs on /tmp).
    #[arg(long, env = "AGENTCORE_LOCAL_READ_ONLY_ROOT")]
    read_only_root: bool,
    /// Seconds an agent has to answer /ping after its sandbox starts.
    #[arg(long, env = "AGENTCORE_LOCAL_STARTUP_TIMEOUT", default_value_t = 60)]
    startup_timeout: u64,
    /// Include the agent's own error status and body in RuntimeClientError messages.
    #[arg(long, env = "AGENTCORE_LOCAL_DEBUG_ERRORS")]
    debug_errors: bool,
    /// Leave session sandboxes running at shutdown; the next start re-adopts them.
    #[arg(long, env = "AGENTCORE_LOCAL_KEEP_SESSIONS")]
    keep_sessions: bool,
    /// USD per vCPU-hour of CPU consumed, for the sessions report's cost estimate.
    #[arg(long, env = "AGENTCORE_LOCAL_PRICE_VCPU_HOUR", default_value_t = 0.0895)]
    price_vcpu_hour: f64,
    /// USD per GB-hour of memory, for the sessions report's cost estimate.
    #[arg(long, env = "AGENTCORE_LOCAL_PRICE_GB_HOUR", default_value_t = 0.00945)]
    price_gb_hour: f64,
    /// MiB of agent output kept per runtime endpoint (log group); the oldest sessions' logs go first.
    #[arg(long, env = "AGENTCORE_LOCAL_LOG_RETENTION_MIB", default_value_t = 256)]
    log_retention_mib: u64,
    /// Open client connections served at once; one more is answered 503 ServiceUnavailable and
    /// closed, so stalled or abandoned clients cannot use up the process's file descriptors.
    #[arg(long, env = "AGENTCORE_LOCAL_MAX_CONNECTIONS", default_value_t = agentcore_local::config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds a request body may take to arrive after its headers before the request is answered
    /// 408 RequestTimeoutException (buffered bodies: every API but S3's streamed uploads).
    #[arg(long, env = "AGENTCORE_LOCAL_BODY_READ_TIMEOUT", default_value_t = 60)]
    body_read_timeout: u64,
    /// Ready spare sandboxes kept per runtime version once it has served a session, so new
    /// sessions skip the sandbox start. A claimed spare keeps its `pool` label (labels are
    /// immutable); its session is recorded in the emulator's store. 0 disables the warm pool.
    #[arg(long, env = "AGENTCORE_LOCAL_WARM_POOL", default_value_t = sessions::DEFAULT_WARM_POOL)]
    warm_pool: usize,
    /// MiB of memory the warm pool's spares may hold together, across all runtimes (each spare
    /// measured when it becomes ready); no new spare starts while they hold this much.
    #[arg(long, env = "AGENTCORE_LOCAL_WARM_POOL_MEMORY_MIB", default_value_t = sessions::DEFAULT_WARM_POOL_MEMORY_MIB)]
    warm_pool_memory_mib: u64,
    /// Once the emulator accepts requests, write `{"url": …, "pid": …}` (JSON) to this file, so
    /// scripts wait for the file instead of polling the port. Written atomically (a temporary
    /// file renamed into place) and removed again at a clean shutdown.
    #[arg(long, env = "AGENTCORE_LOCAL_READY_FILE")]
    ready_file: Option<PathBuf>,
    /// Threads serving connections, each with its own single-threaded runtime (a connection stays
    /// on one thread, with the agent connections its requests open), and threads of the runtime
    /// that runs background work; 0 (the default) means one per CPU.
    #[arg(long, env = "AGENTCORE_LOCAL_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    /// Who answers Bedrock model calls: echo (the text of the last user message), script:PATH (rules
    /// in a JSON file) or openai:URL (an OpenAI-compatible server's API base, e.g.
    /// openai:http://127.0.0.1:11434/v1).
    #[arg(long, env = "AGENTCORE_LOCAL_MODEL_PROVIDER", default_value = "echo")]
    model_provider: String,
    /// Model name sent to an openai: provider [default: the Bedrock model id of each call].
    #[arg(long, env = "AGENTCORE_LOCAL_MODEL_PROVIDER_MODEL")]
    model_provider_model: Option<String>,
    /// Bearer token for an openai: provider.
    #[arg(long, env = "AGENTCORE_LOCAL_MODEL_PROVIDER_API_KEY", hide_env_values = true)]
    model_provider_api_key: Option<String>,
    /// Multiply idle timeouts, max lifetimes and the ping interval (for tests, e.g. 0.05).
    #[arg(long, env = "AGENTCORE_LOCAL_LIFECYCLE_TIME_SCALE", default_value_t = 1.0)]
    lifecycle_time_scale: f64,
    /// Multiply the length of a day for AgentCore Memory expiry: events' eventExpiryDuration,
    /// records' expiry and empty sessions (for tests, e.g. 0.00001 makes 3 days about 2.6 s).
    #[arg(long, env = "AGENTCORE_LOCAL_MEMORY_TIME_SCALE", default_value_t = 1.0)]
    memory_time_scale: f64,
    /// A client of the built-in OIDC issuer, `ID:SECRET`; repeatable. Replaces the default
    /// `agentcore-local-client:agentcore-local-secret`.
    #[arg(long = "issuer-client", env = "AGENTCORE_LOCAL_ISSUER_CLIENTS", value_delimiter = ',')]
    issuer_clients: Vec<String>,
    /// A user of the built-in OIDC issuer (password and authorization-code flows), `NAME:PASSWORD`;
    /// repeatable. Replaces the default `test-user:test-password`.
    #[arg(long = "issuer-user", env = "AGENTCORE_LOCAL_ISSUER_USERS", value_delimiter = ',')]
    issuer_users: Vec<String>,
}

fn build_config(args: &ServeArgs) -> Result<Config, String> {
    if args.account_id.len() != 12 || !args.account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("--account-id must be 12 digits, got '{}'", args.account_id));
    }
    if !agentcore_local::kernel::sigv4::verify::is_region(&args.region) {
        return Err(format!("--region must be an AWS Region such as us-east-1, got '{}'", args.region));
    }
    let mut credentials = std::collections::HashMap::new();
    for flag in &args.credentials {
        let c = config::parse_credential_flag(flag, &args.account_id)?;
        credentials.insert(c.access_key_id.clone(), c);
    }
    if args.credentials.is_empty() {
        config::add_credential(&mut credentials, "test", "test", &args.account_id);
    }
    if args.aws_profiles {
        let found = config::profile_credentials(&args.account_id);
        tracing::info!(profiles = ?found.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), "accepting keys of shared AWS profiles");
        for (_, c) in found {
            credentials.entry(c.access_key_id.clone()).or_insert(c);
        }
    }
    let mut issuer = IssuerConfig::default();
    if !args.issuer_clients.is_empty() {
        issuer.clients = args
            .issuer_clients
            .iter()
            .map(|f| parse_pair(f, "--issuer-client ID:SECRET").map(|(id, secret)| IssuerClient { id, secret }))
            .collect::<Result<_, _>>()?;
    }
    if !args.issuer_users.is_empty() {
        issuer.users = args
            .issuer_users
            .iter()
            .map(|f| parse_pair(f, "--issuer-user NAME:PASSWORD").map(|(name, password)| IssuerUser { name, password }))
            .collect::<Result<_, _>>()?;
    }
    let data_dir =
        if args.in_memory { None } else { Some(args.data_dir.clone().unwrap_or_else(config::default_data_dir)) };
    Ok(Config {
        listen: args.listen,
        data_dir,
        region: args.region.clone(),
        account_id: args.account_id.clone(),
        credentials,
        auth: args.auth,
        sandbox: args.sandbox,
        log_max_bytes_per_runtime: args.log_retention_mib * 1024 * 1024,
        max_connections: args.max_connections,
        body_read_timeout: std::time::Duration::from_secs(args.body_read_timeout.max(1)),
        memory: agentcore_local::services::memory::MemoryConfig {
            time_scale: args.memory_time_scale,
            ..Default::default()
        },
        model_provider: agentcore_local::services::bedrock::providers::ProviderFlags {
            spec: args.model_provider.clone(),
            model: args.model_provider_model.clone(),
            api_key: args.model_provider_api_key.clone(),
        },
        issuer,
        issued_credentials: Default::default(),
        serving_threads: args.worker_threads,
        sessions: SessionConfig {
            max_sessions_per_account: args.max_sessions,
            max_tps_per_endpoint: args.max_tps_per_endpoint,
            startup_timeout: std::time::Duration::from_secs(args.startup_timeout),
            limits: Limits {
                memory_bytes: args.sandbox_memory_mib * 1024 * 1024,
                cpus: args.sandbox_cpus,
                pids: args.sandbox_pids,
            },
            read_only_root: args.read_only_root,
            debug_errors: args.debug_errors,
            keep_sessions: args.keep_sessions,
            time_scale: args.lifecycle_time_scale,
            warm_pool: args.warm_pool,
            warm_pool_memory_bytes: args.warm_pool_memory_mib * 1024 * 1024,
            prices: sessions::report::Prices { vcpu_hour_usd: args.price_vcpu_hour, gb_hour_usd: args.price_gb_hour },
            ..SessionConfig::default()
        },
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = build_config(&args)?;
    let store_desc = match &config.data_dir {
        Some(d) => d.display().to_string(),
        None => "memory".into(),
    };
    if args.lifecycle_time_scale.is_nan() || args.lifecycle_time_scale <= 0.0 {
        return Err("--lifecycle-time-scale must be greater than 0".into());
    }
    if args.memory_time_scale.is_nan() || args.memory_time_scale <= 0.0 {
        return Err("--memory-time-scale must be greater than 0".into());
    }
    if let Some(path) = &args.ready_file {
        // A file left by an earlier run must not announce this one before it listens.
        let _ = std::fs::remove_file(path);
    }
    let running = server::start(config).await.map_err(|e| e.to_string())?;
    let url = running.url();
    // The first line on stdout is the ready line; its `listening on URL` part is stable for scripts.
    println!("agentcore-local listening on {url} (state: {store_desc}) -- export AWS_ENDPOINT_URL={url}");
    if let Some(path) = &args.ready_file {
        write_ready_file(path, &url).map_err(|e| format!("cannot write --ready-file {}: {e}", path.display()))?;
    }
    tracing::info!(%url, startup_ms = running.phases.total().as_secs_f64() * 1e3, phases = %running.phases, "ready");
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    if let Some(path) = &args.ready_file {
        let _ = std::fs::remove_file(path);
    }
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Write the ready file whole or not at all: readers see either no file or the complete JSON.
fn write_ready_file(path: &std::path::Path, url: &str) -> std::io::Result<()> {
    let body = serde_json::json!({ "url": url, "pid": std::process::id() }).to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, body + "\n")?;
    std::fs::rename(&tmp, path)
}

fn main() {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => *args,
        Command::Images(command) => {
            let result = match command {
                ImagesCommand::Build { runtimes, force } => images::build(&runtimes, force),
                ImagesCommand::List => images::list(),
            };
            if let Err(e) = result {
                eprintln!("agentcore-local: {e}");
                std::process::exit(1);
            }
            return;
        }
        Command::VmPipe { name } => {
            if let Err(e) = agentcore_local::sandbox::microvm::pipe::run(&name) {
                eprintln!("agentcore-local vm-pipe {name}: {e}");
                std::process::exit(1);
            }
            return;
        }
        Command::Doctor => {
            let host = agentcore_local::sandbox::microvm::host::Host::detect();
            print!("{}", host.report());
            let docker = std::process::Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            match docker {
                Some(v) => println!("\nDocker {v}: container sandboxes (--sandbox docker) work; microVMs take their images from its store."),
                None => println!("\nDocker is not reachable: --sandbox docker cannot run, and microVMs have no image store (Debian: apt-get install -y docker.io)."),
            }
            if !host.ready() {
                std::process::exit(1);
            }
            return;
        }
        Command::Sessions { endpoint, json } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            if let Err(e) = rt.block_on(local_client::sessions(&local_client::endpoint(endpoint), json)) {
                eprintln!("agentcore-local: {e}");
                std::process::exit(1);
            }
            return;
        }
        Command::Logs { runtime, session, follow, endpoint } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let result = rt.block_on(local_client::logs(
                &local_client::endpoint(endpoint),
                &runtime,
                session.as_deref(),
                follow,
            ));
            if let Err(e) = result {
                eprintln!("agentcore-local: {e}");
                std::process::exit(1);
            }
            return;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.worker_threads > 0 {
        builder.worker_threads(args.worker_threads);
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(serve(args)) {
        eprintln!("agentcore-local: {e}");
        std::process::exit(1);
    }
}
