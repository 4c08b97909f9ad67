//! The STUN binding responder, on real loopback sockets: a Binding request gets the
//! client's address back; anything else gets nothing and costs the responder nothing; the
//! rate limits hold; the responder stops with the server; the CLI flag turns it on.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootstrap_server::{Config, Server};
use mesh_testkit::{TestServer, wait_until};
use rtc_stun::attributes::ATTR_SOFTWARE;
use rtc_stun::message::{
    BINDING_REQUEST, BINDING_SUCCESS, CLASS_REQUEST, Getter, METHOD_ALLOCATE, Message, MessageType,
    TransactionId,
};
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::timeout;

/// How long any wait for something that should happen may take.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait before concluding that no answer is coming.
const SILENCE: Duration = Duration::from_millis(200);

/// The real server with its STUN responder on `ip`, port 0.
async fn start_on(config: Config, ip: &str) -> TestServer {
    let stun = SocketAddr::new(ip.parse().unwrap(), 0);
    let server = TestServer::start(config.with_stun_listen(Some(stun))).await;
    let stun = server.stun_addr().expect("stun_listen was set");
    assert_ne!(stun.port(), 0, "the bound port is reported, not 0");
    server
}

/// The real server with its STUN responder on 127.0.0.1, port 0.
async fn start(config: Config) -> TestServer {
    start_on(config, "127.0.0.1").await
}

/// The STUN responder's address.
fn stun(server: &TestServer) -> SocketAddr {
    server.stun_addr().expect("stun_listen was set")
}

/// The value of one series of `/metrics`, e.g. `bootstrap_stun_answers_total`.
async fn metric(server: &TestServer, series: &str) -> u64 {
    server.metrics().await.count(series)
}

/// Stops the server and checks that it stopped cleanly.
async fn stop(server: TestServer) {
    server.stop().await.expect("a clean stop");
}

/// A Binding request with a fresh transaction id.
fn binding_request() -> (Vec<u8>, TransactionId) {
    let id = TransactionId::new();
    let mut m = Message::new();
    m.build(&[Box::new(BINDING_REQUEST), Box::new(id)]).unwrap();
    (m.raw, id)
}

/// Waits (with [`DEADLINE`]) for the next datagram and decodes it as STUN.
async fn receive(client: &UdpSocket) -> Message {
    let mut buf = [0; 1500];
    let (len, _) = timeout(DEADLINE, client.recv_from(&mut buf))
        .await
        .expect("an answer within the deadline")
        .unwrap();
    let mut m = Message::new();
    m.unmarshal_binary(&buf[..len]).expect("the answer is STUN");
    m
}

/// True if no datagram arrives within [`SILENCE`].
async fn silent(client: &UdpSocket) -> bool {
    let mut buf = [0; 1500];
    timeout(SILENCE, client.recv_from(&mut buf)).await.is_err()
}

fn mapped_address(m: &Message) -> SocketAddr {
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(m).expect("an XOR-MAPPED-ADDRESS");
    SocketAddr::new(mapped.ip, mapped.port)
}

async fn client_on(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.unwrap()
}

#[tokio::test]
async fn a_binding_request_gets_the_clients_address_back() {
    let server = start(Config::default()).await;
    let client = client_on("127.0.0.1").await;
    let (request, id) = binding_request();
    client.send_to(&request, stun(&server)).await.unwrap();
    let answer = receive(&client).await;
    assert_eq!(answer.typ, BINDING_SUCCESS);
    assert_eq!(answer.transaction_id, id);
    assert_eq!(mapped_address(&answer), client.local_addr().unwrap());
    let software = TextAttribute::get_from_as(&answer, ATTR_SOFTWARE).unwrap();
    assert!(software.text.starts_with("bootstrap-server/"), "{software}");
    assert_eq!(metric(&server, "bootstrap_stun_answers_total").await, 1);
    stop(server).await;
}

#[tokio::test]
async fn garbage_gets_no_answer_and_the_responder_keeps_answering() {
    let server = start(Config::default()).await;
    let client = client_on("127.0.0.1").await;
    let (good, _) = binding_request();
    let mut response = Message::new();
    response
        .build(&[Box::new(BINDING_SUCCESS), Box::new(TransactionId::new())])
        .unwrap();
    let mut allocate = Message::new();
    allocate
        .build(&[
            Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
            Box::new(TransactionId::new()),
        ])
        .unwrap();
    let random: Vec<u8> = (0..64).map(|_| rand::random()).collect();
    let garbage: [(&str, Vec<u8>); 6] = [
        ("random bytes", random),
        ("not STUN", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("a truncated header", good[..12].to_vec()),
        ("a Binding success response", response.raw),
        ("an Allocate request", allocate.raw),
        (
            "an oversized datagram",
            [good.clone(), vec![0; 1600]].concat(),
        ),
    ];
    for (what, datagram) in &garbage {
        client.send_to(datagram, stun(&server)).await.unwrap();
        // The responder handles datagrams in order: had it answered the garbage, that answer
        // would arrive before this one.
        let (request, id) = binding_request();
        client.send_to(&request, stun(&server)).await.unwrap();
        let answer = receive(&client).await;
        assert_eq!(answer.transaction_id, id, "{what} was answered");
    }
    assert!(silent(&client).await, "nothing else arrives");
    assert_eq!(
        metric(&server, "bootstrap_stun_answers_total").await,
        garbage.len() as u64
    );
    let refused = |reason: &str| format!("bootstrap_stun_refused_total{{reason=\"{reason}\"}}");
    assert_eq!(metric(&server, &refused("not_stun")).await, 3);
    assert_eq!(metric(&server, &refused("not_binding_request")).await, 2);
    assert_eq!(metric(&server, &refused("oversized")).await, 1);
    stop(server).await;
}

#[tokio::test]
async fn a_source_past_its_burst_is_refused_and_another_source_is_answered() {
    let config = Config::default()
        .with_stun_answers_per_source(1)
        .with_stun_source_burst(2);
    let server = start(config).await;
    let busy = client_on("127.0.0.1").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (request, id) = binding_request();
        busy.send_to(&request, stun(&server)).await.unwrap();
        ids.push(id);
    }
    assert_eq!(receive(&busy).await.transaction_id, ids[0]);
    assert_eq!(receive(&busy).await.transaction_id, ids[1]);
    assert!(silent(&busy).await, "the burst is 2");

    // 127.0.0.2 is another source with its own bucket (a unit test checks they differ).
    let other = client_on("127.0.0.2").await;
    let (request, id) = binding_request();
    other.send_to(&request, stun(&server)).await.unwrap();
    let answer = receive(&other).await;
    assert_eq!(answer.transaction_id, id);
    assert_eq!(mapped_address(&answer), other.local_addr().unwrap());
    assert_eq!(
        metric(
            &server,
            "bootstrap_stun_refused_total{reason=\"rate_limited_source\"}"
        )
        .await,
        3
    );
    stop(server).await;
}

#[tokio::test]
async fn the_total_budget_caps_answers_to_all_sources() {
    let config = Config::default()
        .with_stun_answers_per_second(1)
        .with_stun_answer_burst(2);
    let server = start(config).await;
    let one = client_on("127.0.0.1").await;
    let two = client_on("127.0.0.2").await;
    for client in [&one, &two] {
        let (request, id) = binding_request();
        client.send_to(&request, stun(&server)).await.unwrap();
        assert_eq!(receive(client).await.transaction_id, id);
    }
    let (request, _) = binding_request();
    one.send_to(&request, stun(&server)).await.unwrap();
    two.send_to(&request, stun(&server)).await.unwrap();
    assert!(silent(&one).await && silent(&two).await, "the burst is 2");
    assert_eq!(
        metric(
            &server,
            "bootstrap_stun_refused_total{reason=\"rate_limited_total\"}"
        )
        .await,
        2
    );
    stop(server).await;
}

/// The inodes of the UDP sockets this process holds bound to `addr` (an IPv4 address), from
/// `/proc/net/udp` and `/proc/self/fd`. Asking the kernel whether the port can be bound again
/// would ask about every process: any other one may take a port the moment it is free (it
/// happened twice, once with another test's port-0 socket, once under `stress-ng`).
/// `/proc/net/udp` is read while other tests bind and close sockets, so one reading can
/// list a socket twice or miss it: each inode counts once, and callers read more than once.
fn own_udp_sockets_on(addr: SocketAddr) -> std::collections::BTreeSet<String> {
    let SocketAddr::V4(v4) = addr else {
        panic!("an IPv4 address")
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let inodes: std::collections::BTreeSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str()))
                .then(|| fields.get(9).map(|i| i.to_string()))?
        })
        .collect();
    let ours: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect();
    inodes
        .into_iter()
        .filter(|inode| ours.contains(&format!("socket:[{inode}]")))
        .collect()
}

#[tokio::test]
async fn the_responder_stops_with_the_server_and_frees_its_port() {
    let server = start_on(Config::default(), "127.0.0.3").await;
    let stun = stun(&server);
    assert!(
        (0..10).any(|_| own_udp_sockets_on(stun).len() == 1),
        "the responder's socket is found while it runs"
    );
    stop(server).await;
    // `run` has returned, so the responder's socket is closed.
    for _ in 0..3 {
        assert!(
            own_udp_sockets_on(stun).is_empty(),
            "no socket of ours is left on the STUN address once run returns"
        );
    }
}

#[tokio::test]
async fn a_stun_port_in_use_is_a_clear_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config::default().with_stun_listen(Some(addr));
    let err = Server::bind(listener, config).await.unwrap_err();
    assert!(
        matches!(err, bootstrap_server::Error::StunBind { addr: a, .. } if a == addr),
        "{err}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// The server process, killed if the test ends early (a failed assertion).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_cli_logs_the_stun_address_and_answers_on_it() {
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_bootstrap-server"))
            .args(["--listen", "127.0.0.1:0", "--stun-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // A thread reads stderr, so that waiting for a line has a deadline.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let stun: SocketAddr = loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let line = rx.recv_timeout(left).expect("a 'stun:' line in time");
        if let Some((_, rest)) = line.split_once("stun:") {
            let addr = rest.split_whitespace().next().unwrap();
            break addr.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in rx {});
    assert_ne!(stun.port(), 0, "the real port is logged");

    let client = client_on("127.0.0.1").await;
    let (request, id) = binding_request();
    client.send_to(&request, stun).await.unwrap();
    let answer = receive(&client).await;
    assert_eq!(answer.transaction_id, id);
    assert_eq!(mapped_address(&answer), client.local_addr().unwrap());

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_until("the server exits after SIGTERM", DEADLINE, async || {
        child.0.try_wait().unwrap()
    })
    .await;
    assert!(exit.success(), "{exit:?}");
}
