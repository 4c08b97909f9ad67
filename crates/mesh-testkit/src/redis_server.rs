//! A real Redis for tests and benches: Debian's `redis-server` on 127.0.0.1, started by the
//! test itself on a free port with its own temporary directory and no persistence (never
//! the packaged service), killed on drop. Needs `redis-server` on the PATH
//! (`apt-get install redis-server`): without it, [`Redis::start`] panics saying so.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestPki;
use crate::turn::free_port;

/// How long redis-server may take to answer `PING`.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// How a [`Redis`] is started.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `requirepass`: clients must authenticate with it.
    pub password: Option<String>,
    /// Also listen for TLS on a port of its own, with a certificate for 127.0.0.1 from a CA
    /// the test makes ([`Redis::tls_url`], [`Redis::ca`]).
    pub tls: bool,
}

/// A `redis-server` on 127.0.0.1 (plain TCP, and TLS on request), killed on drop.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    tls: Option<(u16, TestPki)>,
    password: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    /// Plain TCP, no password.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// As `options` say.
    pub fn start_with(options: Options) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("mesh-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for redis-server");
        let tls = options.tls.then(|| {
            let tls_port = std::iter::repeat_with(free_port)
                .find(|p| *p != port)
                .expect("a free port");
            (tls_port, TestPki::write(&dir.join("pki"), &["127.0.0.1"]))
        });
        let mut redis = Self {
            port,
            tls,
            password: options.password,
            dir,
            child: None,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--loglevel",
            "warning",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(["--dir".to_owned(), self.dir.display().to_string()]);
        if let Some(password) = &self.password {
            args.extend(["--requirepass".to_owned(), password.clone()]);
        }
        if let Some((tls_port, pki)) = &self.tls {
            args.extend([
                "--tls-port".to_owned(),
                tls_port.to_string(),
                "--tls-cert-file".to_owned(),
                pki.cert.display().to_string(),
                "--tls-key-file".to_owned(),
                pki.key.display().to_string(),
                "--tls-ca-cert-file".to_owned(),
                pki.ca.display().to_string(),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
            ]);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (apt-get install redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && let Ok(mut conn) = self.try_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "redis-server did not answer PING on 127.0.0.1:{} within {START_DEADLINE:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://[:password@]127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// `rediss://[:password@]127.0.0.1:TLS_PORT/`, for a Redis started with `tls`.
    pub fn tls_url(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("started with tls");
        match &self.password {
            Some(password) => format!("rediss://:{password}@127.0.0.1:{port}/"),
            None => format!("rediss://127.0.0.1:{port}/"),
        }
    }

    /// The PEM file of the CA that signed the TLS port's certificate.
    pub fn ca(&self) -> &Path {
        &self.tls.as_ref().expect("started with tls").1.ca
    }

    /// A plain connection, for the test's own commands.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection()
            .expect("a connection to the test's redis")
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Kills the server (SIGKILL: its data goes with it, as it keeps none on disk).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
