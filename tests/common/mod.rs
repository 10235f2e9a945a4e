//! Starting the real `spanlake` binary on free ports and talking to it over the wire.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `spanlake serve`.
pub struct Server {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub http: SocketAddr,
    pub flight: SocketAddr,
    /// The certificate the server serves when started with `--tls-cert-file`.
    pub tls_cert: Option<PathBuf>,
    extra: Vec<String>,
}

/// `N` distinct free ports: the listeners are held until all are chosen, so the kernel cannot
/// hand the same port out twice (it did: one server got one port for two listeners).
fn free_ports<const N: usize>() -> [SocketAddr; N] {
    let listeners: [TcpListener; N] =
        std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap())
}

impl Server {
    /// Starts a server on `data_dir` and waits until it is ready.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let [grpc, otlp_http, http, flight] = free_ports();
        let mut server = Server {
            child: None,
            data_dir: data_dir.to_path_buf(),
            grpc,
            otlp_http,
            http,
            flight,
            tls_cert: extra
                .iter()
                .position(|a| *a == "--tls-cert-file")
                .map(|i| PathBuf::from(extra[i + 1])),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_spanlake"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--otlp-grpc-addr")
            .arg(self.grpc.to_string())
            .arg("--otlp-http-addr")
            .arg(self.otlp_http.to_string())
            .arg("--http-addr")
            .arg(self.http.to_string())
            .arg("--flight-addr")
            .arg(self.flight.to_string())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start spanlake");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = self.client();
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send()
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("spanlake exited early with {status}; log: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "server not ready in 60 s; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// An HTTP client for this server (trusting its certificate when it serves TLS).
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut builder = reqwest::blocking::Client::builder();
        if let Some(cert) = &self.tls_cert {
            let pem = std::fs::read(cert).unwrap();
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme(), self.http)
    }

    pub fn otlp_http_url(&self) -> String {
        format!("{}://{}/v1/traces", self.scheme(), self.otlp_http)
    }

    pub fn grpc_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.grpc)
    }

    /// Runs SQL through `POST /api/sql` and returns the JSON answer; panics unless 200.
    pub fn sql(&self, sql: &str) -> Value {
        let (status, body) = self.sql_status(sql, None);
        assert_eq!(status, 200, "query {sql:?} failed: {body}");
        body
    }

    pub fn sql_status(&self, sql: &str, tenant: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client()
            .post(self.url("/api/sql"))
            .json(&serde_json::json!({ "sql": sql }));
        if let Some(t) = tenant {
            request = request.header("X-Scope-OrgID", t);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap())
    }

    /// `SELECT count(*)` of a query's rows.
    pub fn count(&self, from_where: &str) -> i64 {
        let body = self.sql(&format!("SELECT count(*) AS n FROM {from_where}"));
        body["data"][0]["n"].as_i64().unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let exit = wait_timeout(&mut child, Duration::from_secs(60));
        assert!(exit.success(), "unclean exit {exit}; log: {}", self.log());
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts again on the same ports and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Polls `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
