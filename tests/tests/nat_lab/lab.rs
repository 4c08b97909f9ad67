//! The lab: network namespaces, veth pairs, bridges and iptables rules that stand for a WAN,
//! home routers doing NAT and the hosts behind them; the daemons started inside them; and
//! the teardown that removes all of it, also after a panic (`Drop`) or a crashed earlier
//! run (every name starts with [`PREFIX`], and [`Lab::build`] first removes what is left).
//!
//! Nothing here sends a packet outside the namespaces it creates: every address is in
//! 203.0.113.0/24 (TEST-NET-3) or 10.0.0.0/8, and those exist only inside the lab.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every namespace of the lab starts with this, so leftovers of a crashed run are found.
pub const PREFIX: &str = "mnl-";
/// The namespace of the "internet": the bootstrap server and the TURN server.
pub const WAN_NS: &str = "mnl-wan";
/// The servers' address on the WAN.
pub const WAN_SERVER_IP: &str = "203.0.113.1";
/// The WAN prefix length.
const WAN_PREFIX: u8 = 24;

/// How a LAN's router treats traffic to the WAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatKind {
    /// Endpoint-independent mapping (plain `MASQUERADE` keeps the source port), filtering
    /// of unsolicited inbound traffic: a "port-restricted cone".
    Cone,
    /// `MASQUERADE --random-fully`: a new public port for every destination.
    Symmetric,
    /// Like [`NatKind::Cone`], but every outbound UDP datagram is dropped: only TCP gets out.
    UdpBlocked,
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cone => "cone",
            Self::Symmetric => "symmetric",
            Self::UdpBlocked => "udp-blocked",
        })
    }
}

/// One private LAN 10.`n`.0.0/24 behind its own router.
#[derive(Debug, Clone)]
pub struct Lan {
    /// The LAN's number: 10.n.0.0/24 inside, 203.0.113.(n+10) on the WAN.
    pub n: u8,
    /// The router's NAT behaviour.
    pub kind: NatKind,
    /// How many hosts (node namespaces) the LAN has: 10.n.0.2, 10.n.0.3, …
    pub hosts: u8,
}

impl Lan {
    /// The router's namespace.
    pub fn router_ns(&self) -> String {
        format!("{PREFIX}r{}", self.n)
    }

    /// The namespace of host `m` (1-based).
    pub fn host_ns(&self, m: u8) -> String {
        format!("{PREFIX}h{}-{m}", self.n)
    }

    /// The address of host `m` (1-based): 10.n.0.(m+1).
    pub fn host_ip(&self, m: u8) -> String {
        format!("10.{}.0.{}", self.n, m + 1)
    }

    /// The router's public address.
    pub fn router_wan_ip(&self) -> String {
        format!("203.0.113.{}", u16::from(self.n) + 10)
    }

    /// The router's iptables rules, as `iptables-restore` input.
    ///
    /// Every kind drops unsolicited inbound traffic on the WAN side, as home routers do.
    /// Without it hole punching between two cone NATs failed every time: the far peer's
    /// early check reaches the router before the near peer has sent anything, leaves an
    /// unreplied conntrack entry that holds the public tuple, and MASQUERADE then maps the
    /// near peer's own flow to a new port. Dropped in `INPUT`/`FORWARD`, the entry is never
    /// confirmed and takes nothing.
    pub fn iptables_rules(&self) -> String {
        let masquerade = match self.kind {
            NatKind::Cone | NatKind::UdpBlocked => "-A POSTROUTING -o wan -j MASQUERADE",
            NatKind::Symmetric => "-A POSTROUTING -o wan -j MASQUERADE --random-fully",
        };
        let udp_block = match self.kind {
            NatKind::UdpBlocked => "-A FORWARD -i lan -o wan -p udp -j DROP\n",
            NatKind::Cone | NatKind::Symmetric => "",
        };
        format!(
            "*nat\n{masquerade}\nCOMMIT\n\
             *filter\n\
             -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
             -A INPUT -i wan -j DROP\n\
             {udp_block}\
             -A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n\
             -A FORWARD -i wan -j DROP\n\
             COMMIT\n"
        )
    }
}

/// What the lab needs from the machine, checked before anything is built: the test fails
/// with this message instead of skipping.
pub fn preflight() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status ({e}): the NAT lab needs Linux"))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(format!(
            "the NAT lab needs root (network namespaces, iptables); effective uid is {euid}: \
             run it as root, e.g. through .ci/run"
        ));
    }
    for (tool, args, package) in [
        ("ip", &["-V"][..], "iproute2"),
        ("iptables-restore", &["--version"][..], "iptables"),
        ("turnserver", &["--version"][..], "coturn"),
        ("sysctl", &["--version"][..], "procps"),
        ("kill", &["-l"][..], "procps"),
    ] {
        let ok = Command::new(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !ok {
            return Err(format!(
                "`{tool}` is missing (PATH={}): install the Debian package {package} \
                 (apt-get install -y iproute2 iptables coturn procps)",
                std::env::var("PATH").unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// Runs a command to completion; its stdout, or what failed.
pub fn run(args: &[&str]) -> Result<String, String> {
    run_with_input(args, None)
}

/// Runs `ip -n NS ARGS…`, `args` split at spaces (no name or address here has one).
fn ip(ns: &str, args: &str) -> Result<(), String> {
    let mut command = vec!["ip", "-n", ns];
    command.extend(args.split(' '));
    run(&command).map(|_| ())
}

/// Runs `ip netns exec NS ARGS…` (split at spaces); its stdout.
pub fn in_ns(ns: &str, args: &str) -> Result<String, String> {
    let mut command = vec!["ip", "netns", "exec", ns];
    command.extend(args.split(' '));
    run(&command)
}

/// Runs a command with `input` on its stdin; its stdout, or what failed.
fn run_with_input(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let (program, rest) = args.split_first().expect("a command");
    let mut child = Command::new(program)
        .args(rest)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{}` could not start: {e}", args.join(" ")))?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("`{}`: writing stdin: {e}", args.join(" ")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The lab. Dropping it kills every process in its namespaces and deletes them.
///
/// Processes started in it are found again by namespace (`ip netns pids`), so a node the
/// test owns is killed here too if the test did not end it first.
#[derive(Debug)]
pub struct Lab {
    /// Namespaces created, in creation order.
    namespaces: Vec<String>,
    /// Daemons the lab owns (servers); nodes are owned by the test.
    daemons: Vec<tokio::process::Child>,
    /// Where every process's output goes.
    pub logs: PathBuf,
    /// The LANs, as built.
    pub lans: Vec<Lan>,
}

impl Lab {
    /// Removes leftovers of an earlier run, then builds the WAN and every LAN.
    pub fn build(lans: &[Lan], logs: &Path) -> Result<Self, String> {
        remove_leftovers()?;
        if logs.exists() {
            std::fs::remove_dir_all(logs).map_err(|e| format!("clearing {logs:?}: {e}"))?;
        }
        std::fs::create_dir_all(logs).map_err(|e| format!("creating {logs:?}: {e}"))?;
        let mut lab = Self {
            namespaces: Vec::new(),
            daemons: Vec::new(),
            logs: logs.to_owned(),
            lans: lans.to_vec(),
        };
        // Built inside the guard: whatever fails half-way is torn down by Drop.
        lab.build_wan()?;
        for lan in lans {
            lab.build_lan(lan)?;
        }
        Ok(lab)
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        run(&["ip", "netns", "add", ns]).map_err(|e| {
            format!("{e}\n(the NAT lab needs to create network namespaces: run as root)")
        })?;
        self.namespaces.push(ns.to_owned());
        ip(ns, "link set lo up")
    }

    /// The WAN: one bridge `wan` holding the servers' address; each router plugs into it.
    fn build_wan(&mut self) -> Result<(), String> {
        self.add_ns(WAN_NS)?;
        ip(WAN_NS, "link add wan type bridge")?;
        ip(
            WAN_NS,
            &format!("addr add {WAN_SERVER_IP}/{WAN_PREFIX} dev wan"),
        )?;
        ip(WAN_NS, "link set wan up")
    }

    /// One LAN: its router (WAN side on the bridge, LAN side a bridge `lan`), the NAT
    /// rules, and one namespace per host with its default route through the router.
    fn build_lan(&mut self, lan: &Lan) -> Result<(), String> {
        let router = lan.router_ns();
        self.add_ns(&router)?;
        let uplink = format!("r{}", lan.n);
        ip(
            WAN_NS,
            &format!("link add {uplink} type veth peer name wan netns {router}"),
        )?;
        ip(WAN_NS, &format!("link set {uplink} master wan up"))?;
        let wan_ip = lan.router_wan_ip();
        ip(&router, &format!("addr add {wan_ip}/{WAN_PREFIX} dev wan"))?;
        ip(&router, "link set wan up")?;
        ip(&router, &format!("route add default via {WAN_SERVER_IP}"))?;
        let gateway = format!("10.{}.0.1", lan.n);
        ip(&router, "link add lan type bridge")?;
        ip(&router, &format!("addr add {gateway}/24 dev lan"))?;
        ip(&router, "link set lan up")?;
        // A new namespace starts with forwarding off.
        in_ns(&router, "sysctl -qw net.ipv4.ip_forward=1")?;
        run_with_input(
            &["ip", "netns", "exec", &router, "iptables-restore"],
            Some(&lan.iptables_rules()),
        )?;
        for m in 1..=lan.hosts {
            let host = lan.host_ns(m);
            self.add_ns(&host)?;
            ip(
                &router,
                &format!("link add h{m} type veth peer name eth0 netns {host}"),
            )?;
            ip(&router, &format!("link set h{m} master lan up"))?;
            ip(&host, &format!("addr add {}/24 dev eth0", lan.host_ip(m)))?;
            ip(&host, "link set eth0 up")?;
            ip(&host, &format!("route add default via {gateway}"))?;
        }
        Ok(())
    }

    /// The command that runs `program` inside `ns` (`ip netns exec` execs it: same PID).
    pub fn command_in(ns: &str, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", ns, program]);
        command.kill_on_drop(true);
        command
    }

    /// A log file in the lab's log directory.
    pub fn log_file(&self, name: &str) -> Result<File, String> {
        let path = self.logs.join(name);
        File::create(&path).map_err(|e| format!("creating {path:?}: {e}"))
    }

    /// Starts a daemon the lab owns (killed on drop); stdout and stderr go to `log`.
    pub fn spawn_daemon(
        &mut self,
        ns: &str,
        program: &str,
        args: &[&str],
        log: &str,
    ) -> Result<(), String> {
        let out = self.log_file(log)?;
        let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
        // The test reads the bootstrap server's info log ("registered"), whatever the
        // caller's RUST_LOG says.
        let child = Self::command_in(ns, program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {program} in {ns}: {e}"))?;
        self.daemons.push(child);
        Ok(())
    }

    /// Fails if a daemon has exited (it should run until teardown).
    pub fn check_daemons(&mut self) -> Result<(), String> {
        for daemon in &mut self.daemons {
            if let Ok(Some(status)) = daemon.try_wait() {
                return Err(format!(
                    "a lab daemon exited early ({status}); see the logs in {:?}",
                    self.logs
                ));
            }
        }
        Ok(())
    }

    /// Waits until something listens on `port` (`proto`: "t" for TCP, "u" for UDP) in `ns`.
    pub async fn wait_listening(
        &mut self,
        ns: &str,
        proto: &str,
        port: u16,
        deadline: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            self.check_daemons()?;
            let out = in_ns(ns, &format!("ss -Hln{proto} sport = :{port}"))?;
            if !out.trim().is_empty() {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "nothing listens on {port}/{proto} in {ns} after {deadline:?}; see {:?}",
                    self.logs
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Lab {
    /// Kills the daemons, then every other process in the lab's namespaces (found by
    /// namespace, not by a recorded PID that may have been reused), and deletes them.
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            let _ = daemon.start_kill();
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = remove_ns(ns) {
                eprintln!("NAT lab teardown: {e}");
            }
        }
    }
}

/// Kills every process in `ns` and deletes it (which removes its interfaces).
fn remove_ns(ns: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = run(&["ip", "netns", "pids", ns]).unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("processes {pids:?} in {ns} do not die"));
        }
        let mut args = vec!["kill", "-KILL"];
        args.extend(&pids);
        let _ = run(&args);
        std::thread::sleep(Duration::from_millis(20));
    }
    run(&["ip", "netns", "del", ns]).map(|_| ())
}

/// Removes every namespace (and the processes in it) that an earlier run left behind.
fn remove_leftovers() -> Result<(), String> {
    let list = run(&["ip", "netns", "list"]).map_err(|e| {
        format!("{e}\n(the NAT lab needs `ip netns`: install iproute2 and run as root)")
    })?;
    for ns in list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(PREFIX))
    {
        eprintln!("NAT lab: removing {ns}, left over from an earlier run");
        remove_ns(ns)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_rules_match_each_nat_kind() {
        let rules = |kind| {
            Lan {
                n: 1,
                kind,
                hosts: 1,
            }
            .iptables_rules()
        };
        assert!(rules(NatKind::Cone).contains("-j MASQUERADE\n"));
        assert!(rules(NatKind::Symmetric).contains("-j MASQUERADE --random-fully\n"));
        assert!(rules(NatKind::UdpBlocked).contains("-i lan -o wan -p udp -j DROP"));
        assert!(!rules(NatKind::Cone).contains("-p udp"));
        for kind in [NatKind::Cone, NatKind::Symmetric, NatKind::UdpBlocked] {
            assert!(rules(kind).contains("-A FORWARD -i wan -j DROP"), "{kind}");
            assert!(rules(kind).contains("-A INPUT -i wan -j DROP"), "{kind}");
        }
    }
}
