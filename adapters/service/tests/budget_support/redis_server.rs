//! A real redis-server for the Redis store tests: `WARDEN_TEST_REDIS_URL` if set, else a
//! private `redis-server` child on a free loopback port (killed on drop). Without either,
//! tests fail under CI (`CI` set) and are skipped with a notice elsewhere.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis server for one test.
pub struct RedisServer {
    /// `redis://127.0.0.1:<port>` (or the given URL).
    pub url: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

fn spawn_on_free_port() -> Option<RedisServer> {
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?;
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if pong(port) {
                return Some(RedisServer {
                    url: format!("redis://127.0.0.1:{port}"),
                    child: Some(child),
                    _dir: Some(dir),
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // port taken in the meantime: try another one
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

fn have_redis_server() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A server for one test, or `None` (after printing why) when none is available outside CI.
/// Panics under CI so that a missing Redis can never pass as green.
pub fn redis_server(test: &str) -> Option<RedisServer> {
    if let Ok(url) = std::env::var("WARDEN_TEST_REDIS_URL") {
        if !url.trim().is_empty() {
            return Some(RedisServer { url, child: None, _dir: None });
        }
    }
    if have_redis_server() {
        if let Some(server) = spawn_on_free_port() {
            return Some(server);
        }
        assert!(std::env::var_os("CI").is_none(), "{test}: redis-server is installed but did not start");
    }
    let why = "no redis-server binary and WARDEN_TEST_REDIS_URL unset \
               (run scripts/start-redis, or install redis-server)";
    assert!(std::env::var_os("CI").is_none(), "{test}: Redis is required under CI: {why}");
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// A key prefix no other test uses on a shared server.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("warden-test-{}-{nanos}-{test}", std::process::id())
}
