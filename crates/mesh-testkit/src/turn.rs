//! A real TURN server for tests and benches: coturn's `turnserver` on 127.0.0.1, UDP and TCP
//! on one port and, on request, TLS on another with a certificate from a CA made for it
//! ([`TestPki`]). Needs `turnserver` on the PATH (`apt-get install coturn`): without it,
//! [`Coturn::start`] panics saying so.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestPki;

/// The long-term credentials' user.
pub const USER: &str = "mesh";
/// Its password.
pub const PASSWORD: &str = "secret";
/// How long coturn may take to listen.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A coturn `turnserver` on 127.0.0.1 (UDP and TCP, and TLS on a port of its own when
/// started with a certificate), killed on drop.
#[derive(Debug)]
pub struct Coturn {
    port: u16,
    tls: Option<(u16, TestPki)>,
    child: Child,
}

impl Coturn {
    /// UDP and TCP on one port.
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// With a TLS port too, its certificate (for 127.0.0.1) signed by a CA the test makes.
    pub fn start_with_tls() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mesh-turn-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        Self::spawn(Some((free_port(), TestPki::write(&dir, &["127.0.0.1"]))))
    }

    fn spawn(tls: Option<(u16, TestPki)>) -> Self {
        let tls_port = tls.as_ref().map(|(port, _)| *port);
        let port = std::iter::repeat_with(free_port)
            .find(|port| Some(*port) != tls_port)
            .expect("a free port");
        let mut args = vec![
            "-n".to_owned(),
            "--listening-ip=127.0.0.1".to_owned(),
            "--relay-ip=127.0.0.1".to_owned(),
            format!("--listening-port={port}"),
            "--min-port=49152".to_owned(),
            "--max-port=65535".to_owned(),
            "--lt-cred-mech".to_owned(),
            format!("--user={USER}:{PASSWORD}"),
            "--realm=mesh".to_owned(),
            "--no-dtls".to_owned(),
            "--no-cli".to_owned(),
            "--allow-loopback-peers".to_owned(),
            "--log-file=stdout".to_owned(),
        ];
        match &tls {
            Some((tls_port, pki)) => args.extend([
                format!("--tls-listening-port={tls_port}"),
                format!("--cert={}", pki.cert.display()),
                format!("--pkey={}", pki.key.display()),
            ]),
            None => args.push("--no-tls".to_owned()),
        }
        let child = Command::new("turnserver")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver on the PATH (apt-get install coturn)");
        let server = Self { port, tls, child };
        // Ready once its TCP listeners accept (the UDP one starts with them).
        let ports = [Some(port), server.tls.as_ref().map(|(p, _)| *p)];
        for port in ports.into_iter().flatten() {
            let started = Instant::now();
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    started.elapsed() < START_DEADLINE,
                    "turnserver did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        server
    }

    /// `turn:127.0.0.1:PORT?transport=…` (`udp` or `tcp`).
    pub fn url(&self, transport: &str) -> String {
        format!("turn:127.0.0.1:{}?transport={transport}", self.port)
    }

    /// The `turns:` URL and the CA file to trust.
    pub fn tls_url(&self) -> (String, std::path::PathBuf) {
        let (port, pki) = self.tls.as_ref().expect("started with TLS");
        (format!("turns:127.0.0.1:{port}"), pki.ca.clone())
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((_, pki)) = &self.tls
            && let Some(dir) = pki.ca.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A port free on 127.0.0.1 for both TCP and UDP, as far as can be told.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
