//! Helpers shared by the `warden` binary's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_warden");

/// A running `warden serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Audit lines written to stdout so far (collected by a thread).
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `warden serve` on a free loopback port with only `envs` (plus a temp data dir).
pub fn serve(envs: &[(&str, String)], args: &[&str]) -> Server {
    let data = tempfile::tempdir().unwrap().keep();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .env_clear()
        .env("WARDEN_DATA_DIR", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Tests poll the server; only the rate-limit test wants a limit.
    for (k, v) in [("WARDEN_AUDIT", "off"), ("RATE_LIMIT_PER_MINUTE", "0")] {
        if !envs.iter().any(|(e, _)| *e == k) {
            cmd.env(k, v);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines_out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&lines_out);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let line = lines.next().expect("server exited").unwrap();
        if let Some(i) = line.find("http://") {
            let rest = &line[i..];
            let end = rest.find(' ').unwrap_or(rest.len());
            break rest[..end].to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base, stdout: lines_out }
}

/// Polls `f` until it holds (20 s at most).
pub fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "condition not met in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}
