//! Test support: the binary (run to completion or in the background), a landing zone
//! generator, the independent reader, and a `moto_server` on a free loopback port.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The inlet binary under test, blind to the machine's own AWS set-up (credentials,
/// profiles, instance metadata): a test gives it what it needs.
pub fn inlet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_inlet"));
    cmd.env("INLET_LOG", "info");
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    // No ~/.aws of the machine's user.
    cmd.env("AWS_CONFIG_FILE", "/dev/null");
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    cmd
}

/// Runs inlet with `args`, returning its output (never panics on a failed run).
pub fn run_inlet(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = inlet();
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn inlet")
}

/// Runs inlet and asserts success, returning stdout.
pub fn run_ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = run_inlet(args, envs);
    assert!(
        out.status.success(),
        "inlet {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A draining run (`inlet run --available-now`, then `extra`, such as `--json`) of
/// `config`: its output, whether it succeeded or not.
pub fn try_drain(config: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    run_inlet(&drain_args(config, extra), envs)
}

/// Runs `inlet COMMAND.. --config CFG FLAGS..` (flags are the words starting with `-`),
/// expecting it to fail: its stderr.
pub fn fails(cfg: &Path, args: &[&str]) -> String {
    let (flags, words): (Vec<&str>, Vec<&str>) = args.iter().partition(|a| a.starts_with('-'));
    let mut all = words;
    all.extend(["--config", cfg.to_str().expect("utf8")]);
    all.extend(flags);
    let out = run_inlet(&all, &[]);
    assert!(
        !out.status.success(),
        "inlet {all:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `try_drain`, asserting success: its stdout.
pub fn drain(config: &Path, extra: &[&str], envs: &[(&str, &str)]) -> String {
    run_ok(&drain_args(config, extra), envs)
}

fn drain_args<'a>(config: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let config = config.to_str().expect("utf8");
    [&["run", "--config", config, "--available-now"], extra].concat()
}

/// Python of the test virtualenv (scripts/setup-test-env.sh), or `python3`.
pub fn python() -> Command {
    let mut cmd = python_bin();
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/helper.py"));
    cmd
}

/// The test virtualenv's Python itself.
pub fn python_bin() -> Command {
    Command::new(std::env::var("INLET_TEST_PYTHON").unwrap_or_else(|_| "python3".into()))
}

pub fn python_ok(args: &[&str]) -> String {
    let out = python().args(args).output().expect("spawn python helper");
    assert!(
        out.status.success(),
        "helper.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Delta table as the Python `deltalake` package reads it.
pub struct TableRead {
    pub version: i64,
    pub rows: Vec<Value>,
}

impl TableRead {
    /// Values of integer column `col`, as a sorted list (duplicates kept).
    pub fn ints(&self, col: &str) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .rows
            .iter()
            .map(|r| {
                r[col]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{col} not an int in {r}"))
            })
            .collect();
        v.sort_unstable();
        v
    }
}

/// Reads the table at `url` with Python `deltalake` (an independent reader).
pub fn read_delta(url: &str, options: &Value) -> TableRead {
    let text = python_ok(&["read-delta", url, &options.to_string()]);
    let v: Value = serde_json::from_str(text.trim()).expect("reader output is JSON");
    TableRead {
        version: v["version"].as_i64().expect("version"),
        rows: v["rows"].as_array().expect("rows").clone(),
    }
}

/// `file://` URL of a local path.
pub fn url_of(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Every bad record (one JSON object per line) in the files under `root`.
pub fn bad_records_under(root: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let text = std::fs::read_to_string(&p).expect("read");
                out.extend(
                    text.lines()
                        .map(|l| serde_json::from_str::<Value>(l).expect("bad record JSON")),
                );
            }
        }
    }
    out
}

/// Row count of the table at `url` through `polars`.
pub fn polars_count(url: &str, options: &Value) -> u64 {
    python_ok(&["polars-count", url, &options.to_string()])
        .trim()
        .parse()
        .expect("count")
}

/// A data file's row groups (their rows) and, per column, whether it has a dictionary, as
/// pyarrow reads the file's footer.
pub fn parquet_layout(file: &Path) -> Value {
    let text = python_ok(&["parquet-layout", &file.display().to_string()]);
    serde_json::from_str(text.trim()).expect("layout JSON")
}

/// A landing zone of JSON lines files whose rows carry unique `id`s.
pub struct Landing {
    pub dir: PathBuf,
    next_id: i64,
    next_file: usize,
    pub ids: BTreeSet<i64>,
}

impl Landing {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("mkdir landing");
        Self {
            dir: dir.to_path_buf(),
            next_id: 1,
            next_file: 0,
            ids: BTreeSet::new(),
        }
    }

    /// The text of a file of `rows` records with fresh ids, and its name.
    pub fn next_file(&mut self, rows: usize, gzip: bool) -> (String, Vec<u8>) {
        let mut text = String::new();
        for _ in 0..rows {
            let id = self.next_id;
            self.next_id += 1;
            self.ids.insert(id);
            text.push_str(&format!(
                "{{\"id\":{id},\"name\":\"n{id}\",\"amount\":{}.5,\"nested\":{{\"k\":\"v{id}\",\"n\":{id}}},\"tags\":[\"a\",\"b\"]}}\n",
                id % 97
            ));
        }
        self.next_file += 1;
        let name = format!(
            "part-{:05}.json{}",
            self.next_file,
            if gzip { ".gz" } else { "" }
        );
        let bytes = if gzip {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(text.as_bytes()).expect("gzip");
            enc.finish().expect("gzip")
        } else {
            text.into_bytes()
        };
        (name, bytes)
    }

    /// Writes `n` files of `rows` rows each into the directory (every third gzipped).
    pub fn add_files(&mut self, n: usize, rows: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let (name, bytes) = self.next_file(rows, i % 3 == 2);
                let path = self.dir.join(name);
                std::fs::write(&path, bytes).expect("write landing file");
                path
            })
            .collect()
    }
}

/// Writes a pipeline config into `dir/pipeline.toml` and returns its path.
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, body).expect("write config");
    path
}

/// A local pipeline config over `landing` into `table`, checkpoint in `state`.
pub fn local_config(dir: &Path, extra_source: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "pipeline_id = \"test_pipeline\"\n[source]\nurl = \"landing\"\n{extra_source}\n[sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n"
        ),
    )
}

/// `inlet files --json` for a config.
pub fn files_json(config: &Path) -> Vec<Value> {
    files_json_with(config, &[])
}

/// `inlet files --json` for a config, with `envs` (an S3 checkpoint's credentials).
pub fn files_json_with(config: &Path, envs: &[(&str, &str)]) -> Vec<Value> {
    let out = run_ok(
        &[
            "files",
            "--config",
            config.to_str().expect("utf8"),
            "--json",
        ],
        envs,
    );
    serde_json::from_str::<Value>(&out)
        .expect("files --json is JSON")
        .as_array()
        .expect("array")
        .clone()
}

/// `inlet files --state STATE --json` for a config.
pub fn files_in_state(config: &Path, state: &str) -> Vec<Value> {
    let out = run_ok(
        &[
            "files",
            "--config",
            config.to_str().expect("utf8"),
            "--state",
            state,
            "--json",
        ],
        &[],
    );
    serde_json::from_str::<Value>(&out)
        .expect("json")
        .as_array()
        .expect("array")
        .clone()
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `moto_server` on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        let bin = std::env::var("INLET_TEST_MOTO").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (run scripts/setup-test-env.sh): {e}"));
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Ready when it accepts connections; bounded, so a broken install fails the test.
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn s3(&self, args: &[&str]) {
        let mut all = vec!["s3", self.endpoint.as_str()];
        all.extend_from_slice(args);
        python_ok(&all);
    }

    /// An SQS operation of helper.py against this moto; returns its stdout.
    pub fn sqs(&self, args: &[&str]) -> String {
        let mut all = vec!["sqs", self.endpoint.as_str()];
        all.extend_from_slice(args);
        python_ok(&all)
    }

    /// Every object under `prefix` of `bucket`, as text by key.
    pub fn dump(&self, bucket: &str, prefix: &str) -> serde_json::Map<String, Value> {
        let out = python_ok(&["s3", self.endpoint.as_str(), "dump", bucket, prefix]);
        serde_json::from_str(&out).expect("dump JSON")
    }

    /// A config's `storage_options` line reaching this moto.
    pub fn storage_options(&self) -> String {
        format!(
            "storage_options = {{ aws_endpoint = \"{}\", aws_allow_http = \"true\", aws_region = \"us-east-1\" }}",
            self.endpoint
        )
    }

    /// Environment for inlet: fake credentials, as the AWS chain would provide.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
    }

    /// Storage options for the Python reader.
    pub fn reader_options(&self) -> Value {
        serde_json::json!({
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `inlet run` in the background, killed on drop if still running.
pub struct Running {
    child: std::sync::Mutex<Child>,
    stderr: PathBuf,
}

impl Running {
    pub fn start(config: &Path, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let args = [&["run", "--config", config.to_str().expect("utf8")], extra].concat();
        Self::start_args(&args, config, env)
    }

    /// `inlet ARGS` in the background, its stderr beside `near`.
    pub fn start_args(args: &[&str], near: &Path, env: &[(&str, &str)]) -> Self {
        let stderr = near.with_extension(format!("stderr-{}", std::process::id() ^ rand_suffix()));
        let mut cmd = inlet();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn inlet");
        Self {
            child: std::sync::Mutex::new(child),
            stderr,
        }
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child().id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit (bounded), returning the status and stderr.
    pub fn wait(self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child().try_wait().expect("wait") {
                return (
                    status,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                );
            }
            assert!(
                Instant::now() < deadline,
                "inlet did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the clean exit a signal promises (status 0); returns the log.
    pub fn stop(self) -> String {
        self.signal("TERM");
        let (status, log) = self.wait();
        assert!(
            status.success(),
            "SIGTERM ends the run with 0: {status:?}\n{log}"
        );
        log
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The exit status, once it has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child().try_wait().expect("wait")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL unless it has exited already; true when it was killed.
    pub fn kill(self) -> bool {
        if self.child().try_wait().expect("wait").is_some() {
            return false;
        }
        let _ = self.child().kill();
        let status = self.child().wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    }
}

/// `tests/it/faultproxy.py` in front of a loopback endpoint: a fraction `rate` of requests
/// answered 500/503, reset, stalled, truncated, or forwarded with the answer lost.
pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
    stats: PathBuf,
}

impl FaultProxy {
    pub fn start(target: &str, dir: &Path, rate: f64, seed: u64, stall_seconds: f64) -> Self {
        Self::start_with(target, dir, rate, seed, stall_seconds, &[])
    }

    /// `start`, with environment for the proxy (e.g. `DENY_DELETE`).
    pub fn start_with(
        target: &str,
        dir: &Path,
        rate: f64,
        seed: u64,
        stall_seconds: f64,
        env: &[(&str, &str)],
    ) -> Self {
        let port = target.rsplit(':').next().expect("port");
        let stats = dir.join(format!("proxy-stats-{seed}.json"));
        let mut child = python_bin()
            .envs(env.iter().copied())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/faultproxy.py"))
            .args([
                port,
                stats.to_str().expect("utf8"),
                &rate.to_string(),
                &seed.to_string(),
                &stall_seconds.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start faultproxy.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("proxy port");
        let listen: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("faultproxy.py printed {line:?}"));
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{listen}"),
            stats,
        }
    }

    /// {"requests": N, "faults": {kind: count}} so far.
    pub fn stats(&self) -> Value {
        std::fs::read_to_string(&self.stats)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({"requests": 0, "faults": {}}))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A campaign's size from the environment (`INLET_CAMPAIGN_*`), or the short CI default.
pub fn campaign_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints a campaign's figures and appends them to `$INLET_CAMPAIGN_REPORT` when set, for
/// docs/reliability.md.
pub fn report_campaign(name: &str, figures: Value) {
    let line = serde_json::json!({"campaign": name, "figures": figures});
    eprintln!("{line}");
    if let Ok(path) = std::env::var("INLET_CAMPAIGN_REPORT") {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("report file");
        writeln!(f, "{line}").expect("write report");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child().kill();
        let _ = self.child().wait();
    }
}

/// A deterministic generator (xorshift), so a failing campaign reproduces from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Polls `done` until it holds; fails with `what` (and the run's log) after `secs`.
pub fn wait_for(secs: u64, what: &str, run: Option<&Running>, done: impl FnMut() -> bool) {
    wait_for_all(secs, what, run.as_slice(), done);
}

/// [`wait_for`] beside several runs: fails when any of them exits, with every run's log.
pub fn wait_for_all(secs: u64, what: &str, runs: &[&Running], mut done: impl FnMut() -> bool) {
    let logs = || {
        let each: Vec<String> = runs.iter().map(|r| r.log()).collect();
        if each.len() > 1 {
            each.iter()
                .enumerate()
                .map(|(i, log)| format!("--- run {} of {} ---\n{log}", i + 1, each.len()))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            each.concat()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        if let Some(status) = runs.iter().find_map(|r| r.exited()) {
            panic!(
                "inlet exited ({status}) while waiting for {what}\n{}",
                logs()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn committed(config: &Path) -> usize {
    if !config.parent().expect("dir").join("state").exists() {
        return 0;
    }
    files_in_state(config, "committed").len()
}

/// A plain HTTP GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
