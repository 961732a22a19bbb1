//! `callvisor-dev bench`: the shipped benchmark.
//!
//! `bench audio` measures the audio path the way production runs it: three processes on
//! one machine, so that each one's CPU is its own. The bridge (`callvisor serve`, this
//! binary, configured by environment like any deployment; or any Twilio-style bridge
//! given by `--target`), the Realtime stand-in ([`echo`], its own process), and the load
//! generator ([`loadgen`], threads of the bench process) placing N concurrent calls
//! through the real webhook and media socket. Over a steady window after the ramp it
//! reads utime + stime and RSS of each from `/proc` ([`procstat`]) and reports frames,
//! loss, order, round trips, CPU per frame, memory per call, set-up times and the
//! generator's own lateness ([`report`]). The exit code is non-zero when a call failed or
//! a frame was lost, reordered, duplicated or crossed calls; timings never fail a run.
//!
//! `bench persistence` pushes transcript segments through the PersistenceActor into
//! PostgreSQL ([`persist`]); `bench pool` runs allocate + release cycles against the number
//! pool from several instances ([`pool`]).
//! Every run works in its own scratch database (`callvisor_bench_<pid>`), dropped after.

pub mod echo;
pub mod loadgen;
pub mod persist;
pub mod pool;
pub mod procstat;
pub mod report;
pub mod ws;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use callvisor_standins::audio::FRAME_MS;
use loadgen::{CallPlan, Control, LoadConfig};
use procstat::ProcSample;
use report::{AudioReport, ProcUse};

/// Prints a line to stdout; a closed pipe is not worth a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use out;

/// What to measure.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// The audio path: N concurrent Twilio calls echoed through a Realtime stand-in.
    Audio(AudioArgs),
    /// Transcript segments per second through the PersistenceActor into PostgreSQL.
    Persistence(persist::PersistenceArgs),
    /// Number-pool allocate + release cycles per second with several instances on one database.
    Pool(pool::PoolArgs),
    /// (internal) The lean Realtime echo stand-in, run as its own process by `bench audio`.
    #[command(hide = true)]
    EchoServer {
        /// Port to listen on (127.0.0.1).
        #[arg(long)]
        port: u16,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// `bench audio` options.
#[derive(Debug, Clone, Args)]
pub struct AudioArgs {
    /// Concurrent calls.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Length of the measured window, in seconds (after the ramp and the warm-up).
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// New calls per second during the ramp.
    #[arg(long, default_value_t = 50.0)]
    pub ramp_rate: f64,
    /// Seconds between the last call connecting and the window.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Load-generator threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Echo stand-in threads.
    #[arg(long, default_value_t = 1)]
    pub echo_threads: usize,
    /// The bridge's HTTP workers (`CALLVISOR__SERVER__WORKERS`; 0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Open the Realtime session while the phone rings (`calls.preopen_realtime`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub preopen: bool,
    /// Tenants the calls are spread over.
    #[arg(long, default_value_t = 10)]
    pub tenants: usize,
    /// Measure another bridge: its voice-webhook URL (e.g. `http://127.0.0.1:5050/incoming-call`).
    /// It must use the echo stand-in (`--echo-port`) as its Realtime URL.
    #[arg(long)]
    pub target: Option<String>,
    /// With `--target`: the bridge's pid, to read its CPU and memory.
    #[arg(long)]
    pub target_pid: Option<u32>,
    /// With `--target`: the URL Twilio signs (default: the target URL).
    #[arg(long)]
    pub signing_url: Option<String>,
    /// With `--target`: the Twilio auth token it checks signatures with.
    #[arg(long, default_value = "bench-twilio-auth-token")]
    pub auth_token: String,
    /// With `--target`: the number called (`To`).
    #[arg(long, default_value = "+15550200000")]
    pub to: String,
    /// Port of the echo stand-in (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub echo_port: u16,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs a bench command; the process exit code comes back.
pub fn run(command: BenchCommand) -> ExitCode {
    match command {
        BenchCommand::EchoServer { port, threads } => {
            match echo::serve(SocketAddr::from(([127, 0, 0, 1], port)), threads) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("BENCH_FAILED role=echo error={:?}", e.to_string());
                    ExitCode::FAILURE
                }
            }
        }
        BenchCommand::Audio(args) => match audio(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("BENCH_FAILED error={e:?}");
                ExitCode::from(2)
            }
        },
        BenchCommand::Pool(args) => match pool::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("BENCH_FAILED error={e:?}");
                ExitCode::from(2)
            }
        },
        BenchCommand::Persistence(args) => match persist::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("BENCH_FAILED error={e:?}");
                ExitCode::from(2)
            }
        },
    }
}

/// A child process killed when dropped (the bench never leaves one behind).
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGTERM, then SIGKILL after `patience`.
    fn stop(&mut self, patience: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + patience;
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("BENCH_CHILD_KILLED name={}", self.name);
        }
    }
}

/// A free loopback port (bound and released: another process could take it meanwhile,
/// which on a benchmark machine it does not).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Waits until `check` holds, polling; `false` on timeout.
fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `GET path` on `addr`; the status code.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::Read as _;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    ws::status_code(&String::from_utf8_lossy(&response))
}

/// `url` with its database name replaced.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = base
        .get(scheme_end..)
        .and_then(|rest| rest.find('/'))
        .and_then(|i| base.get(..scheme_end + i))
        .unwrap_or(base);
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A scratch database on the server `DATABASE_URL` names, dropped when this is dropped.
pub(crate) struct ScratchDb {
    admin_url: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl ScratchDb {
    pub(crate) fn create() -> Result<ScratchDb, String> {
        let server = std::env::var("DATABASE_URL").map_err(|_| {
            "DATABASE_URL is not set (scripts/bench starts a private PostgreSQL)".to_owned()
        })?;
        let admin_url = with_database(&server, "postgres");
        let name = format!("callvisor_bench_{}", std::process::id());
        let mut admin = PgConnection::establish(&admin_url)
            .map_err(|e| format!("cannot reach PostgreSQL: {e}"))?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .and_then(|()| admin.batch_execute(&format!("CREATE DATABASE {name}")))
            .map_err(|e| e.to_string())?;
        Ok(ScratchDb {
            url: with_database(&server, &name),
            admin_url,
            name,
        })
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Placeholder secrets for the spawned bridge (every vendor is a loopback stand-in).
const BENCH_AUTH_TOKEN: &str = "bench-twilio-auth-token";
const BENCH_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// Seeds `n` subscribed tenants able to take any number of calls; their numbers.
fn seed_tenants(url: &str, n: usize) -> Result<Vec<String>, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    let mut numbers = Vec::new();
    for i in 0..n.max(1) {
        let number = format!("+1555020{i:04}");
        conn.batch_execute(&format!(
            "WITH t AS (
                 INSERT INTO profiles (phone_number, is_subscribed, preferred_language, display_name, max_concurrent_calls)
                 VALUES ('{number}', true, 'en', 'bench', 10000)
                 ON CONFLICT (phone_number) DO UPDATE SET is_subscribed = true, max_concurrent_calls = 10000
                 RETURNING id)
             INSERT INTO user_prompts (user_id, system_prompt, config_metadata)
             SELECT id, 'You are a benchmark.', '{{\"greeting_message\":\"Hello.\"}}'::jsonb FROM t
             ON CONFLICT (user_id) DO NOTHING"
        ))
        .map_err(|e| e.to_string())?;
        numbers.push(number);
    }
    Ok(numbers)
}

/// Which program a benchmark process runs.
#[derive(Debug, Clone, Copy)]
enum Program {
    /// The service's own binary, `callvisor`, built beside this one (same target directory).
    Service,
    /// This binary (`callvisor-dev`), e.g. for the echo stand-in.
    Own,
}

/// Starts `program` with `args`; `wrap` is a command prefix for profiling
/// (`BENCH_SERVER_WRAP="valgrind --tool=callgrind"`), split on spaces.
fn spawn(
    program: Program,
    name: &'static str,
    args: &[&str],
    envs: &[(&str, String)],
    log: Option<&PathBuf>,
    wrap: Option<&str>,
) -> Result<Process, String> {
    let own = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe = match program {
        Program::Own => own,
        Program::Service => {
            let service = own.with_file_name("callvisor");
            if !service.exists() {
                return Err(format!(
                    "{} not found: build it first (`cargo build --bin callvisor`, as scripts/bench does)",
                    service.display()
                ));
            }
            service
        }
    };
    let mut prefix = wrap.unwrap_or_default().split_whitespace();
    let mut command = match prefix.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(prefix).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (key, value) in envs {
        command.env(key, value);
    }
    match log {
        Some(path) => {
            let file =
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            command.stderr(file);
        }
        None => {
            command.stderr(Stdio::null());
        }
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    Ok(Process { name, child })
}

/// What the bench knows about the bridge it measures.
struct Bridge {
    process: Option<Process>,
    pid: Option<String>,
    addr: SocketAddr,
    host: String,
    webhook_path: String,
    signing_url: String,
    auth_token: String,
    numbers: Vec<String>,
    log: Option<PathBuf>,
    _db: Option<ScratchDb>,
}

fn start_bridge(args: &AudioArgs, echo_port: u16) -> Result<Bridge, String> {
    if let Some(target) = &args.target {
        let after_scheme = target.find("://").map_or(0, |i| i + 3);
        let rest = target.get(after_scheme..).unwrap_or_default();
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| {
            (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("/"))
        });
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("--target {authority}: {e}"))?
            .next()
            .ok_or("--target: no address")?;
        return Ok(Bridge {
            process: None,
            pid: args.target_pid.map(|p| p.to_string()),
            addr,
            host: authority.to_owned(),
            webhook_path: path.to_owned(),
            signing_url: args.signing_url.clone().unwrap_or_else(|| target.clone()),
            auth_token: args.auth_token.clone(),
            numbers: vec![args.to.clone()],
            log: None,
            _db: None,
        });
    }
    let db = ScratchDb::create()?;
    let port = free_port()?;
    let public = format!("http://127.0.0.1:{port}");
    let log =
        std::env::temp_dir().join(format!("callvisor-bench-{}-server.log", std::process::id()));
    let mut envs: Vec<(&str, String)> = vec![
        ("APP_ENV", "development".to_owned()),
        ("DATABASE_URL", db.url.clone()),
        ("PORT", port.to_string()),
        ("PUBLIC_URL", public.clone()),
        (
            "OPENAI_REALTIME_URL",
            format!("ws://127.0.0.1:{echo_port}/v1/realtime"),
        ),
        ("OPENAI_API_KEY", "sk-bench-placeholder".to_owned()),
        // Nothing listens there: summaries are off and no REST call is expected.
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1".to_owned()),
        (
            "TWILIO_API_BASE",
            "http://127.0.0.1:9/2010-04-01".to_owned(),
        ),
        ("TWILIO_ACCOUNT_SID", BENCH_ACCOUNT_SID.to_owned()),
        ("TWILIO_AUTH_TOKEN", BENCH_AUTH_TOKEN.to_owned()),
        ("ADMIN_TOKEN", "bench-admin-token-placeholder".to_owned()),
        ("CALLVISOR__FEATURES__SUMMARIES", "false".to_owned()),
        (
            "CALLVISOR__CALLS__PREOPEN_REALTIME",
            args.preopen.to_string(),
        ),
        ("CALLVISOR__SERVER__WORKERS", args.workers.to_string()),
        // Every simulated call comes from 127.0.0.1: one source, no limit.
        ("CALLVISOR__RATE_LIMITS__TWILIO_PER_SECOND", "0".to_owned()),
        (
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "info".to_owned()),
        ),
    ];
    if std::env::var_os("LOG_DIR").is_some() {
        envs.push(("LOG_DIR", String::new()));
    }
    let wrap = std::env::var("BENCH_SERVER_WRAP").ok();
    let process = spawn(
        Program::Service,
        "callvisor serve",
        &["serve"],
        &envs,
        Some(&log),
        wrap.as_deref(),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut bridge = Bridge {
        pid: Some(process.pid()),
        process: Some(process),
        addr,
        host: format!("127.0.0.1:{port}"),
        webhook_path: "/twilio/voice".to_owned(),
        signing_url: format!("{public}/twilio/voice"),
        auth_token: BENCH_AUTH_TOKEN.to_owned(),
        numbers: Vec::new(),
        log: Some(log.clone()),
        _db: None,
    };
    let ready = wait_for(Duration::from_secs(90), || {
        if let Some(p) = bridge.process.as_mut() {
            if matches!(p.child.try_wait(), Ok(Some(_))) {
                return true;
            }
        }
        http_status(addr, "/readyz") == Some(200)
    });
    if !ready || http_status(addr, "/readyz") != Some(200) {
        return Err(format!(
            "callvisor serve did not become ready (log: {})",
            log.display()
        ));
    }
    bridge.numbers = seed_tenants(&db.url, args.tenants)?;
    bridge._db = Some(db);
    Ok(bridge)
}

fn audio(args: &AudioArgs) -> Result<bool, String> {
    if args.calls == 0 || args.seconds == 0 || args.ramp_rate <= 0.0 {
        return Err("--calls, --seconds and --ramp-rate must be positive".to_owned());
    }
    let ticks = procstat::clock_ticks();
    let echo_port = if args.echo_port == 0 {
        free_port()?
    } else {
        args.echo_port
    };
    let echo_addr = SocketAddr::from(([127, 0, 0, 1], echo_port));
    let mut echo = spawn(
        Program::Own,
        "echo stand-in",
        &[
            "bench",
            "echo-server",
            "--port",
            &echo_port.to_string(),
            "--threads",
            &args.echo_threads.to_string(),
        ],
        &[],
        None,
        None,
    )?;
    if !wait_for(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&echo_addr, Duration::from_millis(200)).is_ok()
    }) {
        return Err("the echo stand-in did not start".to_owned());
    }
    out!("BENCH_ECHO_READY url=ws://{echo_addr}/v1/realtime");
    let mut bridge = start_bridge(args, echo_port)?;
    out!(
        "BENCH_BRIDGE_READY webhook=http://{}{} pid={} log={}",
        bridge.host,
        bridge.webhook_path,
        bridge.pid.as_deref().unwrap_or("-"),
        bridge
            .log
            .as_ref()
            .map_or("-".to_owned(), |p| p.display().to_string())
    );
    let bridge_sample =
        |pid: &Option<String>| pid.as_deref().and_then(|p| procstat::sample(p, ticks));
    // Idle baseline: the bridge's memory before any call.
    std::thread::sleep(Duration::from_millis(500));
    let baseline = bridge_sample(&bridge.pid);

    let control = Arc::new(Control::new());
    let config = Arc::new(LoadConfig {
        addr: bridge.addr,
        host: bridge.host.clone(),
        webhook_path: bridge.webhook_path.clone(),
        signing_url: bridge.signing_url.clone(),
        auth_token: bridge.auth_token.clone(),
        account_sid: BENCH_ACCOUNT_SID.to_owned(),
        to_numbers: bridge.numbers.clone(),
        from: "+15550199999".to_owned(),
        drain: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(10),
    });
    let threads = args.threads.max(1);
    let start = Instant::now() + Duration::from_millis(200);
    let mut plans: Vec<Vec<CallPlan>> = vec![Vec::new(); threads];
    for i in 0..args.calls {
        let at = start + Duration::from_secs_f64(i as f64 / args.ramp_rate);
        let to = config
            .to_numbers
            .get(i % config.to_numbers.len().max(1))
            .cloned()
            .unwrap_or_default();
        if let Some(list) = plans.get_mut(i % threads) {
            list.push(CallPlan {
                call_tag: 1 + i as u32,
                at,
                to,
            });
        }
    }
    let frames_per_second = 1000 / FRAME_MS as usize;
    let expected = args.calls * frames_per_second * (args.seconds as usize + 1) / threads + 1024;
    let mut handles = Vec::new();
    for list in plans {
        handles.push(
            loadgen::spawn_thread(Arc::clone(&config), Arc::clone(&control), list, expected)
                .map_err(|e| e.to_string())?,
        );
    }
    // Ramp: every call connected (or failed).
    let ramp_timeout =
        Duration::from_secs_f64(args.calls as f64 / args.ramp_rate) + Duration::from_secs(30);
    let ramped = wait_for(ramp_timeout, || {
        let c = &control;
        c.connected.load(std::sync::atomic::Ordering::SeqCst)
            + c.failed.load(std::sync::atomic::Ordering::SeqCst)
            >= args.calls
    });
    let ramp_seconds = start.elapsed().as_secs_f64();
    out!(
        "BENCH_RAMPED calls={} connected={} failed={} seconds={ramp_seconds:.1}{}",
        args.calls,
        control.connected.load(std::sync::atomic::Ordering::SeqCst),
        control.failed.load(std::sync::atomic::Ordering::SeqCst),
        if ramped { "" } else { " timeout=true" }
    );
    std::thread::sleep(Duration::from_secs(args.warmup));

    // The steady window.
    let window_started = Instant::now();
    control.start_window();
    let server_before = bridge_sample(&bridge.pid);
    let echo_before = procstat::sample(&echo.pid(), ticks);
    let self_before = procstat::sample("self", ticks);
    let machine_before = procstat::machine(ticks);
    let callgrind = std::env::var("BENCH_SERVER_WRAP").is_ok_and(|w| w.contains("callgrind"));
    if let (true, Some(pid)) = (callgrind, &bridge.pid) {
        // Instructions counted inside the window only.
        let _ = Command::new("callgrind_control")
            .args(["-z", pid])
            .stdout(Stdio::null())
            .status();
    }
    let mut peak_rss = 0u64;
    let window = Duration::from_secs(args.seconds);
    while window_started.elapsed() < window {
        let left = window.saturating_sub(window_started.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(1)));
        if let Some(s) = bridge_sample(&bridge.pid) {
            peak_rss = peak_rss.max(s.rss_kib);
        }
    }
    control.end_window();
    let window_seconds = window_started.elapsed().as_secs_f64();
    let server_after = bridge_sample(&bridge.pid);
    let echo_after = procstat::sample(&echo.pid(), ticks);
    let self_after = procstat::sample("self", ticks);
    let machine_after = procstat::machine(ticks);
    if let (true, Some(pid)) = (callgrind, &bridge.pid) {
        let _ = Command::new("callgrind_control")
            .args(["-d", pid])
            .stdout(Stdio::null())
            .status();
    }
    let live_at_end = control
        .connected
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(control.failed.load(std::sync::atomic::Ordering::SeqCst));
    control.stop();

    let mut results = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(result) => results.push(result),
            Err(_) => return Err("a load-generator thread panicked".to_owned()),
        }
    }
    let echo_stats = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(echo::fetch_stats(echo_addr))
        .unwrap_or_default();

    let use_of = |before: Option<ProcSample>, after: Option<ProcSample>| -> Option<ProcUse> {
        let (b, a) = (before?, after?);
        Some(ProcUse {
            cpu_seconds: a.cpu.saturating_sub(b.cpu).as_secs_f64(),
            rss_kib: a.rss_kib,
        })
    };
    let report = AudioReport::build(
        args,
        &results,
        &echo_stats,
        window_seconds,
        ramp_seconds,
        use_of(server_before, server_after),
        baseline.map(|b| b.rss_kib),
        peak_rss,
        live_at_end,
        use_of(echo_before, echo_after),
        use_of(self_before, self_after),
        machine_before
            .zip(machine_after)
            .map(|((b0, t0), (b1, t1))| {
                (
                    b1.saturating_sub(b0).as_secs_f64(),
                    t1.saturating_sub(t0).as_secs_f64(),
                )
            }),
    );
    if let Some(process) = bridge.process.as_mut() {
        process.stop(Duration::from_secs(15));
    }
    echo.stop(Duration::from_secs(2));
    report.print();
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report.clean())
}
