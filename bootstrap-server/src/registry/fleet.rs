//! A server of a fleet: its own sessions in a [`Local`], the rooms shared with the other
//! servers through Redis (docs/architecture.md, "The fleet"; the keys, values and messages
//! byte for byte in docs/protocol.md §11).
//!
//! - **Registrations.** `{prefix}:node:{room}:{node}` holds `"{server} {session}"` (the
//!   server's 16-hex-digit id); `{prefix}:room:{room}` is the set of the room's node ids.
//!   Both live [`Config::fleet_registration_ttl`] and are renewed by the holding server
//!   every third of it. A server's lease, `{prefix}:srv:{server}`, lives
//!   [`Config::fleet_lease`] and is renewed every third of it: a registration counts only
//!   while its server's lease does, so a killed server's nodes leave every sample within a
//!   lease. Registering writes the key and reads what it held: another server's session of
//!   the same key is told to close (`kick`), so one key has one registration in the fleet.
//! - **Delivery.** A unicast to a node not held here is one script: read the node's key,
//!   publish to its server's channel `{prefix}:to:{server}`. Nobody subscribed (the server
//!   is gone), no key, or the far server no longer holds the node: the sender gets
//!   `UNKNOWN_PEER`, as from a single server. Broadcasts go to `{prefix}:broadcast`, which
//!   every server delivers to its own members of the room. Pub/sub, not streams: signaling
//!   is worth nothing late, a server that is gone must not have frames kept for it, and
//!   each server's outgoing queues are already the bound (Redis's pub/sub output-buffer
//!   limit cuts a subscriber that stops reading; it reconnects and re-announces).
//! - **Samples** are drawn from the room's set (`SRANDMEMBER`) by a script that skips, and
//!   cleans, members whose key expired or whose server's lease lapsed.
//! - **Faults.** Every Redis call is bounded by [`Config::fleet_timeout`]; a failure makes
//!   the server *degraded* (`/healthz`, `bootstrap_fleet_redis_up`): it serves its own
//!   registrations as a single server, answers unicasts to nodes it does not hold with
//!   `UNKNOWN_PEER`, and keeps trying. When Redis answers again (and on any sign that Redis
//!   lost its data: the lease renewal finds no lease), it re-announces every registration
//!   it holds; one that another live server holds meanwhile is closed here instead.
//!
//! The session-facing calls never wait on Redis but [`Fleet::register`] and
//! [`Fleet::sample`]; unicasts, broadcasts and unregistrations go through one bounded queue
//! that a task writes in pipelined batches, in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mesh_proto::{ErrorCode, NodeId, RoomName};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Delivery, Local, Outbound, Registration};
use crate::Error;
use crate::config::Config;
use crate::metrics::{Kind, Metrics};
use crate::session::error_frame;

/// Operations written to Redis in one pipeline, at most.
const BATCH: usize = 256;

/// Failed unregistrations remembered to retry when Redis is back; beyond, the keys expire.
const MAX_PENDING_REMOVALS: usize = 65_536;

/// Pauses between attempts to subscribe again.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// A sample drawn across the room, skipping (and cleaning) members that no longer count:
/// their key expired, or their server's lease lapsed. Draws `2k + 1` members, so that a
/// few stale ones still leave `k`.
const SAMPLE_FN: &str = r"
local function sample(room_key, prefix, room, exclude, k)
  local out = {}
  if k <= 0 then return out end
  local ids = redis.call('SRANDMEMBER', room_key, 2 * k + 1)
  for _, id in ipairs(ids) do
    if #out >= k then break end
    if id ~= exclude then
      local node_key = prefix .. ':node:' .. room .. ':' .. id
      local v = redis.call('GET', node_key)
      if not v then
        redis.call('SREM', room_key, id)
      else
        local sid = string.match(v, '^(%x+) ')
        if sid then
          if redis.call('EXISTS', prefix .. ':srv:' .. sid) == 1 then
            table.insert(out, id)
          else
            redis.call('DEL', node_key)
            redis.call('SREM', room_key, id)
          end
        end
      end
    end
  end
  return out
end
";

/// KEYS: node, room. ARGV: value, ttl (s), node id, prefix, room, k. Writes the
/// registration and returns the key's previous value (or '') followed by a sample.
const REGISTER: &str = r"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local out = sample(KEYS[2], ARGV[4], ARGV[5], ARGV[3], tonumber(ARGV[6]))
table.insert(out, 1, old or '')
return out
";

/// KEYS: room. ARGV: prefix, room, exclude, k.
const SAMPLE: &str = r"
return sample(KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
";

/// KEYS: node, room. ARGV: value, ttl (s), node id, prefix, this server. Renews a
/// registration, unless another live server holds the key: then returns 0.
const REANNOUNCE: &str = r"
local old = redis.call('GET', KEYS[1])
if old and old ~= ARGV[1] then
  local sid = string.match(old, '^(%x+) ')
  if sid and sid ~= ARGV[5] and redis.call('EXISTS', ARGV[4] .. ':srv:' .. sid) == 1 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
";

/// KEYS: node, room. ARGV: value, node id. Removes a registration if it is still the one
/// this session wrote.
const UNREGISTER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
";

/// KEYS: node. ARGV: prefix, message. Publishes to the channel of the node's server:
/// returns the subscribers reached, -1 without a key, -2 for a value that does not decode.
const UNICAST: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
local sid = string.match(v, '^(%x+) ')
if not sid then return -2 end
return redis.call('PUBLISH', ARGV[1] .. ':to:' .. sid, ARGV[2])
";

/// A script's text and its SHA-1, for `EVALSHA`.
#[derive(Debug)]
struct Script {
    text: &'static str,
    sha: String,
}

impl Script {
    fn new(text: &'static str) -> Self {
        Self {
            text,
            sha: redis::Script::new(text).get_hash().to_owned(),
        }
    }
}

/// The scripts sent with every frame or update, by hash.
#[derive(Debug)]
struct Scripts {
    unicast: Script,
    unregister: Script,
}

/// `EVALSHA sha` or `EVAL text`, to which the caller adds the keys and arguments.
fn script<'p>(
    pipe: &'p mut redis::Pipeline,
    script: &Script,
    by_hash: bool,
) -> &'p mut redis::Pipeline {
    if by_hash {
        pipe.cmd("EVALSHA").arg(&script.sha)
    } else {
        pipe.cmd("EVAL").arg(script.text)
    }
}

/// The names of a fleet's keys and channels.
#[derive(Debug)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn server(&self, server: &str) -> String {
        format!("{}:srv:{server}", self.prefix)
    }
    fn node(&self, room: &RoomName, node: &NodeId) -> String {
        format!("{}:node:{room}:{node}", self.prefix)
    }
    fn room(&self, room: &RoomName) -> String {
        format!("{}:room:{room}", self.prefix)
    }
    fn channel(&self, server: &str) -> String {
        format!("{}:to:{server}", self.prefix)
    }
    fn broadcast(&self) -> String {
        format!("{}:broadcast", self.prefix)
    }
}

/// What the queue towards Redis carries.
#[derive(Debug)]
enum Op {
    /// A `Transfer` frame for a node this server does not hold.
    Unicast {
        room: RoomName,
        from: NodeId,
        to: NodeId,
        frame: Bytes,
    },
    /// A `TransferBroadcast` frame for the room's members on the other servers.
    Broadcast {
        room: RoomName,
        from: NodeId,
        frame: Bytes,
    },
    /// A session ended: its registration goes, if it is still its own.
    Unregister {
        room: RoomName,
        node: NodeId,
        session: u64,
    },
    /// A message to one server's channel (a kick, a failed delivery).
    Publish {
        server: u64,
        message: Vec<u8>,
        kind: &'static str,
    },
}

/// The two ways a server reaches Redis, each healthy or not.
#[derive(Clone, Copy, Debug)]
enum Part {
    Commands,
    Subscription,
}

#[derive(Debug)]
struct Health {
    commands: Result<(), String>,
    subscription: Result<(), String>,
    /// Since when the server is degraded, if it is.
    down_since: Option<Instant>,
    /// Whether it ever reached Redis fully (an outage is counted only after).
    was_up: bool,
    /// Whether the failure to reach Redis at start was logged.
    told: bool,
}

/// A server of a fleet. See the module documentation.
#[derive(Debug)]
pub(crate) struct Fleet {
    inner: Arc<Inner>,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Inner {
    local: Local,
    keys: Keys,
    scripts: Scripts,
    /// This server's id, 16 hex digits: random at every start.
    me: String,
    id: u64,
    client: Client,
    conn: ConnectionManager,
    ops: mpsc::Sender<Op>,
    /// Mirrors `health`: whether unicasts to other servers are worth queueing.
    up: AtomicBool,
    health: Mutex<Health>,
    /// Set when what this server holds must be written again (it lost Redis).
    dirty: AtomicBool,
    removals: Mutex<Vec<(RoomName, NodeId, u64)>>,
    metrics: Arc<Metrics>,
    lease: Duration,
    ttl: Duration,
    timeout: Duration,
    max_frame: usize,
    /// What the lease key holds: where this server listens, for operators.
    about: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("prefix", &self.keys.prefix)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Starts a fleet server's side of Redis: the connection is made in the background (a
    /// Redis that is down at start makes the server degraded, not refuse to start).
    pub fn start(
        config: &Config,
        metrics: Arc<Metrics>,
        about: String,
        local: Local,
    ) -> Result<Self, Error> {
        let Some(url) = &config.redis else {
            return Err(Error::InvalidConfig("a fleet needs a redis URL".into()));
        };
        let client = match &config.redis_ca {
            None => Client::open(url.expose()),
            Some(path) => {
                let root = std::fs::read(path).map_err(|e| {
                    Error::InvalidConfig(format!(
                        "cannot read the Redis CA file {}: {e}",
                        path.display()
                    ))
                })?;
                Client::build_with_tls(
                    url.expose(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root),
                    },
                )
            }
        }
        .map_err(|e| Error::InvalidConfig(format!("redis URL {url}: {e}")))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.fleet_timeout))
            .set_response_timeout(Some(config.fleet_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|e| Error::InvalidConfig(format!("redis URL {url}: {e}")))?;
        let id: u64 = rand::random();
        let (ops, rx) = mpsc::channel(config.fleet_queue);
        let inner = Arc::new(Inner {
            local,
            keys: Keys {
                prefix: config.fleet_prefix.clone(),
            },
            scripts: Scripts {
                unicast: Script::new(UNICAST),
                unregister: Script::new(UNREGISTER),
            },
            me: format!("{id:016x}"),
            id,
            client,
            conn,
            ops,
            up: AtomicBool::new(false),
            health: Mutex::new(Health {
                commands: Err("not connected to redis yet".into()),
                subscription: Err("not subscribed yet".into()),
                down_since: Some(Instant::now()),
                was_up: false,
                told: false,
            }),
            dirty: AtomicBool::new(true),
            removals: Mutex::new(Vec::new()),
            metrics,
            lease: config.fleet_lease,
            ttl: config.fleet_registration_ttl(),
            timeout: config.fleet_timeout,
            max_frame: config.max_frame_size,
            about,
        });
        info!(redis = %url, prefix = %config.fleet_prefix, server = %inner.me, "fleet: sharing rooms through redis");
        let stop = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(write_ops(inner.clone(), rx, stop.clone())),
            tokio::spawn(keep_lease(inner.clone(), stop.clone())),
            tokio::spawn(subscribe(inner.clone(), stop.clone())),
        ];
        Ok(Self {
            inner,
            stop,
            tasks: Mutex::new(tasks),
        })
    }

    pub fn local(&self) -> &Local {
        &self.inner.local
    }

    pub async fn register(&self, reg: Registration, k: usize) -> Result<Vec<NodeId>, ErrorCode> {
        let inner = &self.inner;
        let (room, node, session) = (reg.room.clone(), reg.node_id, reg.session);
        inner.local.register(reg)?;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(format!("{SAMPLE_FN}{REGISTER}"))
            .arg(2)
            .arg(inner.keys.node(&room, &node))
            .arg(inner.keys.room(&room))
            .arg(inner.value(session))
            .arg(inner.ttl.as_secs())
            .arg(node.to_string())
            .arg(&inner.keys.prefix)
            .arg(room.as_str())
            .arg(k);
        match inner.query::<Vec<Value>>(&cmd).await {
            Ok(values) => {
                let mut values = values.into_iter();
                if let Some(old) = values.next() {
                    inner.replaced(&room, &node, &old);
                }
                Ok(inner.node_ids(values, k))
            }
            Err(why) => {
                debug!("registration not written to redis ({why}); it will be re-announced");
                inner.dirty.store(true, Ordering::Relaxed);
                Ok(inner.local.sample(&room, &node, k))
            }
        }
    }

    pub fn unregister(&self, room: &RoomName, node: &NodeId, session: u64) {
        if !self.inner.local.unregister(room, node, session) {
            return;
        }
        let op = Op::Unregister {
            room: room.clone(),
            node: *node,
            session,
        };
        if let Err(e) = self.inner.ops.try_send(op) {
            // The key expires, or goes with the next re-announcement's retries.
            self.inner.remember_removal(e.into_inner());
        }
    }

    pub fn deliver(&self, room: &RoomName, from: &NodeId, to: &NodeId, out: Outbound) -> Delivery {
        let inner = &self.inner;
        let out = match inner.local.deliver_here(room, to, out) {
            Ok(delivery) => return delivery,
            Err(out) => out,
        };
        if !inner.up.load(Ordering::Relaxed) {
            return Delivery::UnknownPeer;
        }
        let op = Op::Unicast {
            room: room.clone(),
            from: *from,
            to: *to,
            frame: out.bytes,
        };
        match inner.ops.try_send(op) {
            Ok(()) => Delivery::Forwarded,
            Err(_) => {
                inner.metrics.fleet_queue_full.inc();
                Delivery::Busy
            }
        }
    }

    pub fn broadcast(&self, room: &RoomName, from: &NodeId, bytes: &Bytes) -> (usize, usize) {
        let inner = &self.inner;
        let here = inner.local.broadcast(room, from, bytes);
        if inner.up.load(Ordering::Relaxed) {
            let op = Op::Broadcast {
                room: room.clone(),
                from: *from,
                frame: bytes.clone(),
            };
            if inner.ops.try_send(op).is_err() {
                inner.metrics.fleet_queue_full.inc();
            }
        }
        here
    }

    pub async fn sample(&self, room: &RoomName, exclude: &NodeId, k: usize) -> Vec<NodeId> {
        let inner = &self.inner;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(format!("{SAMPLE_FN}{SAMPLE}"))
            .arg(1)
            .arg(inner.keys.room(room))
            .arg(&inner.keys.prefix)
            .arg(room.as_str())
            .arg(exclude.to_string())
            .arg(k);
        match inner.query::<Vec<Value>>(&cmd).await {
            Ok(values) => inner.node_ids(values.into_iter(), k),
            Err(_) => inner.local.sample(room, exclude, k),
        }
    }

    pub fn degraded(&self) -> Option<String> {
        let health = lock(&self.inner.health);
        let since = health.down_since?;
        let why = match (&health.commands, &health.subscription) {
            (Err(why), _) | (_, Err(why)) => why.clone(),
            _ => "redis unreachable".into(),
        };
        Some(format!(
            "redis unreachable for {:.0?}: {why}; serving this server's own registrations only",
            since.elapsed()
        ))
    }

    pub async fn close(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            // The writer drains its queue first (each batch bounded by the timeout).
            let _ = timeout(self.inner.timeout * 4, task).await;
        }
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.inner.keys.server(&self.inner.me));
        let _ = self.inner.query::<Value>(&cmd).await;
        info!("fleet: left (lease removed)");
    }
}

impl Inner {
    /// What a registration of `session` here holds in Redis.
    fn value(&self, session: u64) -> String {
        format!("{} {session}", self.me)
    }

    /// One command, bounded in time, with the outcome reported to the health.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let result = timeout(self.timeout, cmd.query_async::<T>(&mut self.conn.clone())).await;
        let result = match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.kind() == redis::ErrorKind::UnexpectedReturnType => {
                self.bad_data(format_args!("a reply of redis did not decode: {e}"));
                return Err(e.to_string());
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        self.report(
            Part::Commands,
            result.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        result
    }

    fn report(&self, part: Part, result: Result<(), String>) {
        if result.is_err() {
            self.metrics.fleet_redis_errors.inc();
        }
        let mut health = lock(&self.health);
        match part {
            Part::Commands => health.commands = result,
            Part::Subscription => health.subscription = result,
        }
        let ok = health.commands.is_ok() && health.subscription.is_ok();
        match (ok, health.down_since) {
            (true, Some(since)) => {
                health.down_since = None;
                health.was_up = true;
                self.up.store(true, Ordering::Relaxed);
                self.metrics.fleet_redis_up.set(1);
                self.dirty.store(true, Ordering::Relaxed);
                info!(
                    down_for = ?since.elapsed(),
                    "fleet: redis reachable; re-announcing this server's registrations"
                );
            }
            (false, Some(_)) if !health.was_up && !health.told => {
                // Not reached yet since the start: said once, not counted as an outage.
                health.told = true;
                let why = match (&health.commands, &health.subscription) {
                    (Err(why), _) | (_, Err(why)) => why.as_str(),
                    _ => "",
                };
                if !why.starts_with("not ") {
                    warn!(
                        "fleet: redis unreachable at start ({why}); serving this server's own registrations only until it answers"
                    );
                } else {
                    health.told = false;
                }
            }
            (false, None) => {
                health.down_since = Some(Instant::now());
                self.up.store(false, Ordering::Relaxed);
                self.metrics.fleet_redis_up.set(0);
                self.metrics.fleet_outages.inc();
                let why = match (&health.commands, &health.subscription) {
                    (Err(why), _) | (_, Err(why)) => why.as_str(),
                    _ => "",
                };
                warn!(
                    "fleet: redis unreachable ({why}); serving this server's own registrations only"
                );
            }
            _ => {}
        }
    }

    fn bad_data(&self, what: std::fmt::Arguments<'_>) {
        self.metrics.fleet_bad_data.inc();
        warn!("fleet: skipped bad data: {what}");
    }

    /// Node ids of a script's answer; members that do not parse are counted and skipped.
    fn node_ids(&self, values: impl Iterator<Item = Value>, k: usize) -> Vec<NodeId> {
        let mut ids = Vec::with_capacity(k);
        for value in values {
            let parsed = match &value {
                Value::BulkString(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse::<NodeId>().ok()),
                _ => None,
            };
            match parsed {
                Some(id) if ids.len() < k => ids.push(id),
                Some(_) => {}
                None => self.bad_data(format_args!(
                    "a room member that is not a node id: {value:?}"
                )),
            }
        }
        ids
    }

    /// A registration replaced the value `old` of its key: if another server held it, that
    /// server is told to close its session.
    fn replaced(&self, room: &RoomName, node: &NodeId, old: &Value) {
        let Value::BulkString(old) = old else {
            return self.bad_data(format_args!("a registration's previous value: {old:?}"));
        };
        if old.is_empty() {
            return;
        }
        let Some((server, session)) = parse_value(old) else {
            return self.bad_data(format_args!(
                "registration value {:?}",
                String::from_utf8_lossy(old)
            ));
        };
        if server == self.id {
            return; // this server's own: the local registry replaced it already
        }
        debug!(%node, "the key was registered at server {server:016x}: closing that session");
        let message = Message::Kick {
            room: room.clone(),
            node: *node,
            session,
        };
        self.publish(server, message);
    }

    fn publish(&self, server: u64, message: Message) {
        let kind = message.kind();
        let op = Op::Publish {
            server,
            message: message.encode(),
            kind,
        };
        if self.ops.try_send(op).is_err() {
            self.metrics.fleet_queue_full.inc();
        }
    }

    fn remember_removal(&self, op: Op) {
        if let Op::Unregister {
            room,
            node,
            session,
        } = op
        {
            let mut removals = lock(&self.removals);
            if removals.len() < MAX_PENDING_REMOVALS {
                removals.push((room, node, session));
            }
        }
    }

    /// Tells `from` (a session here) that its unicast to `to` went nowhere.
    fn notice(&self, room: &RoomName, from: &NodeId, to: &NodeId, code: ErrorCode) {
        let why = format!("unicast to {to} not delivered: {}", code.label());
        let out = Outbound {
            bytes: error_frame(&self.metrics, code, Some(*to), &why),
            kind: "error",
            received: None,
        };
        if self.local.deliver(room, from, out) != Delivery::Queued {
            self.metrics.notices_dropped.inc();
        }
    }

    /// Writes one batch of queued operations in a single pipeline, in order.
    async fn write(&self, batch: &mut Vec<Op>) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for op in batch.iter() {
            self.op_cmd(&mut pipe, op, true);
        }
        let mut results = match self.pipeline(&pipe, batch.len()).await {
            Ok(results) => results,
            Err(_) => {
                self.dirty.store(true, Ordering::Relaxed);
                for op in batch.drain(..) {
                    match op {
                        Op::Unicast { room, from, to, .. } => {
                            self.notice(&room, &from, &to, ErrorCode::UNKNOWN_PEER);
                        }
                        op @ Op::Unregister { .. } => self.remember_removal(op),
                        Op::Broadcast { .. } | Op::Publish { .. } => {}
                    }
                }
                return;
            }
        };
        // Scripts Redis does not know (it restarted): sent again in full, which caches them.
        let missing: Vec<usize> = (0..results.len())
            .filter(|&i| matches!(&results[i], Err(e) if e.code() == Some("NOSCRIPT")))
            .collect();
        if !missing.is_empty() {
            let mut retry = redis::pipe();
            retry.ignore_errors();
            for &i in &missing {
                self.op_cmd(&mut retry, &batch[i], false);
            }
            if let Ok(again) = self.pipeline(&retry, missing.len()).await {
                for (i, result) in missing.into_iter().zip(again) {
                    results[i] = result;
                }
            }
        }
        for (op, result) in batch.drain(..).zip(results) {
            match op {
                Op::Unicast { room, from, to, .. } => match result {
                    Ok(Value::Int(n)) if n >= 1 => {
                        self.metrics
                            .fleet_published
                            .get_or_create(&Kind { kind: "unicast" })
                            .inc();
                    }
                    Ok(Value::Int(-2)) => {
                        self.bad_data(format_args!("the registration value of {to}"));
                        self.notice(&room, &from, &to, ErrorCode::UNKNOWN_PEER);
                    }
                    // No key (the node is nowhere), nobody subscribed (its server is gone),
                    // or the script failed.
                    _ => self.notice(&room, &from, &to, ErrorCode::UNKNOWN_PEER),
                },
                Op::Broadcast { .. } => {
                    self.metrics
                        .fleet_published
                        .get_or_create(&Kind { kind: "broadcast" })
                        .inc();
                }
                Op::Publish { kind, .. } => {
                    self.metrics
                        .fleet_published
                        .get_or_create(&Kind { kind })
                        .inc();
                }
                op @ Op::Unregister { .. } => {
                    if result.is_err() {
                        self.remember_removal(op);
                    }
                }
            }
        }
    }

    /// Adds the command of `op` to `pipe`: its script by hash (`EVALSHA`, cheaper for
    /// Redis: no script text to read and hash) or in full (`EVAL`, which caches it).
    fn op_cmd(&self, pipe: &mut redis::Pipeline, op: &Op, by_hash: bool) {
        match op {
            Op::Unicast {
                room,
                from,
                to,
                frame,
            } => {
                let message = Message::Unicast {
                    origin: self.id,
                    room: room.clone(),
                    from: *from,
                    to: *to,
                    frame: frame.clone(),
                };
                script(pipe, &self.scripts.unicast, by_hash)
                    .arg(1)
                    .arg(self.keys.node(room, to))
                    .arg(&self.keys.prefix)
                    .arg(message.encode());
            }
            Op::Broadcast { room, from, frame } => {
                let message = Message::Broadcast {
                    origin: self.id,
                    room: room.clone(),
                    from: *from,
                    frame: frame.clone(),
                };
                pipe.cmd("PUBLISH")
                    .arg(self.keys.broadcast())
                    .arg(message.encode());
            }
            Op::Unregister {
                room,
                node,
                session,
            } => self.unregister_cmd(pipe, room, node, *session, by_hash),
            Op::Publish {
                server, message, ..
            } => {
                pipe.cmd("PUBLISH")
                    .arg(self.keys.channel(&format!("{server:016x}")))
                    .arg(message.as_slice());
            }
        }
    }

    fn unregister_cmd(
        &self,
        pipe: &mut redis::Pipeline,
        room: &RoomName,
        node: &NodeId,
        session: u64,
        by_hash: bool,
    ) {
        script(pipe, &self.scripts.unregister, by_hash)
            .arg(2)
            .arg(self.keys.node(room, node))
            .arg(self.keys.room(room))
            .arg(self.value(session))
            .arg(node.to_string());
    }

    /// Writes every registration this server holds again (renewing their TTLs), closes
    /// those that another live server took meanwhile, and retries failed unregistrations.
    async fn reannounce(&self) -> Result<(), String> {
        let all = self.local.snapshot();
        for chunk in all.chunks(BATCH) {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for (room, node, session) in chunk {
                pipe.cmd("EVAL")
                    .arg(REANNOUNCE)
                    .arg(2)
                    .arg(self.keys.node(room, node))
                    .arg(self.keys.room(room))
                    .arg(self.value(*session))
                    .arg(self.ttl.as_secs())
                    .arg(node.to_string())
                    .arg(&self.keys.prefix)
                    .arg(&self.me);
            }
            let results = self.pipeline(&pipe, chunk.len()).await?;
            for ((room, node, session), result) in chunk.iter().zip(results) {
                match result {
                    Ok(Value::Int(1)) => {
                        self.metrics.fleet_reannounced.inc();
                    }
                    Ok(Value::Int(0)) => {
                        info!(%node, "the key registered at another server meanwhile: closing the session here");
                        self.local.kick(room, node, *session);
                    }
                    other => debug!(%node, "re-announcement failed: {other:?}"),
                }
            }
        }
        let removals = std::mem::take(&mut *lock(&self.removals));
        for chunk in removals.chunks(BATCH) {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for (room, node, session) in chunk {
                self.unregister_cmd(&mut pipe, room, node, *session, false);
            }
            if let Err(why) = self.pipeline(&pipe, chunk.len()).await {
                lock(&self.removals).extend_from_slice(chunk);
                return Err(why);
            }
        }
        Ok(())
    }

    async fn pipeline(
        &self,
        pipe: &redis::Pipeline,
        n: usize,
    ) -> Result<Vec<RedisResult<Value>>, String> {
        let answer = timeout(
            self.timeout,
            pipe.query_async::<Vec<RedisResult<Value>>>(&mut self.conn.clone()),
        )
        .await;
        let result = match answer {
            Ok(Ok(results)) if results.len() == n => Ok(results),
            Ok(Ok(results)) => Err(format!("{} answers to {n} commands", results.len())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        self.report(
            Part::Commands,
            result.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        result
    }

    /// A message from another server (or this one's own broadcast, skipped).
    fn on_message(&self, bytes: &[u8]) {
        let message = match Message::decode(bytes, self.max_frame) {
            Ok(message) => message,
            Err(e) => return self.bad_data(format_args!("a message on the fleet's channels: {e}")),
        };
        let kind = message.kind();
        match message {
            Message::Broadcast { origin, .. } if origin == self.id => return,
            Message::Unicast {
                origin,
                room,
                from,
                to,
                frame,
            } => {
                let out = Outbound {
                    bytes: frame,
                    kind: "transfer",
                    received: Some(Instant::now()),
                };
                let code = match self.local.deliver(&room, &to, out) {
                    Delivery::Queued | Delivery::Forwarded => None,
                    Delivery::UnknownPeer => Some(ErrorCode::UNKNOWN_PEER),
                    Delivery::Busy => {
                        self.metrics.dropped.inc();
                        Some(ErrorCode::TARGET_BUSY)
                    }
                };
                if let Some(code) = code {
                    if origin == self.id {
                        self.notice(&room, &from, &to, code);
                    } else {
                        self.publish(
                            origin,
                            Message::Failed {
                                room,
                                from,
                                to,
                                code,
                            },
                        );
                    }
                }
            }
            Message::Broadcast {
                room, from, frame, ..
            } => {
                let (_, dropped) = self.local.broadcast(&room, &from, &frame);
                self.metrics.dropped.inc_by(dropped as u64);
            }
            Message::Kick {
                room,
                node,
                session,
            } => {
                if self.local.kick(&room, &node, session) {
                    info!(%node, "the key registered at another server: closing the session here");
                }
            }
            Message::Failed {
                room,
                from,
                to,
                code,
            } => self.notice(&room, &from, &to, code),
        }
        self.metrics
            .fleet_received
            .get_or_create(&Kind { kind })
            .inc();
    }
}

/// Writes the queued operations to Redis, a batch at a time.
async fn write_ops(inner: Arc<Inner>, mut rx: mpsc::Receiver<Op>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            biased;
            op = rx.recv() => op,
            // Only once the queue is empty: what was queued before the stop is written.
            () = stop.cancelled() => None,
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        inner.write(&mut batch).await;
    }
}

/// Renews the lease, and re-announces what this server holds when Redis lost it (or this
/// server lost Redis), and every third of the registrations' TTL.
async fn keep_lease(inner: Arc<Inner>, stop: CancellationToken) {
    let mut tick = interval(inner.lease / 3);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut renewed: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(inner.keys.server(&inner.me))
            .arg(&inner.about)
            .arg("PX")
            .arg(u64::try_from(inner.lease.as_millis()).unwrap_or(u64::MAX))
            .arg("GET");
        let Ok(previous) = inner.query::<Option<Vec<u8>>>(&cmd).await else {
            inner.dirty.store(true, Ordering::Relaxed);
            continue;
        };
        let lapsed = previous.is_none();
        let due = renewed.is_none_or(|at| at.elapsed() >= inner.ttl / 3);
        if lapsed || due || inner.dirty.swap(false, Ordering::Relaxed) {
            if lapsed && renewed.is_some() {
                warn!(
                    "fleet: this server's lease was gone from redis (restarted, or cut off for longer than the lease): re-announcing"
                );
            }
            match inner.reannounce().await {
                Ok(()) => renewed = Some(Instant::now()),
                Err(why) => {
                    debug!("re-announcement failed: {why}");
                    inner.dirty.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Keeps a subscription to this server's channel and the broadcast channel.
async fn subscribe(inner: Arc<Inner>, stop: CancellationToken) {
    let mut pause = RESUBSCRIBE_MIN;
    loop {
        let connect = async {
            let mut pubsub = inner.client.get_async_pubsub().await?;
            pubsub.subscribe(inner.keys.channel(&inner.me)).await?;
            pubsub.subscribe(inner.keys.broadcast()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = timeout(inner.timeout, connect) => connected,
        };
        match connected {
            Ok(Ok(pubsub)) => {
                pause = RESUBSCRIBE_MIN;
                // Kicks sent while unsubscribed were missed: the re-announcement finds them.
                inner.dirty.store(true, Ordering::Relaxed);
                inner.report(Part::Subscription, Ok(()));
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => match message {
                            Some(message) => inner.on_message(message.get_payload_bytes()),
                            None => break,
                        },
                    }
                }
                inner.report(
                    Part::Subscription,
                    Err("the subscription to redis was closed".into()),
                );
            }
            Ok(Err(e)) => inner.report(Part::Subscription, Err(format!("cannot subscribe: {e}"))),
            Err(_) => inner.report(
                Part::Subscription,
                Err(format!("cannot subscribe within {:?}", inner.timeout)),
            ),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = sleep(pause) => {}
        }
        pause = (pause * 2).min(RESUBSCRIBE_MAX);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `"{server} {session}"`: 16 hex digits, a space, a decimal u64.
fn parse_value(value: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (server, session) = text.split_once(' ')?;
    if server.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(server, 16).ok()?, session.parse().ok()?))
}

/// A message between the servers of a fleet, on their Redis channels (docs/protocol.md §11.3).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// 1: a `Transfer` frame for a node the receiving server holds.
    Unicast {
        origin: u64,
        room: RoomName,
        from: NodeId,
        to: NodeId,
        frame: Bytes,
    },
    /// 2: a `TransferBroadcast` frame for the room's members.
    Broadcast {
        origin: u64,
        room: RoomName,
        from: NodeId,
        frame: Bytes,
    },
    /// 3: the session `session` of `node` is replaced by a registration elsewhere.
    Kick {
        room: RoomName,
        node: NodeId,
        session: u64,
    },
    /// 4: a unicast from `from` to `to` was not delivered, with the code to tell `from`.
    Failed {
        room: RoomName,
        from: NodeId,
        to: NodeId,
        code: ErrorCode,
    },
}

/// Why a fleet message did not decode.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MessageError {
    #[error("message ends early")]
    Truncated,
    #[error("unknown version {0}")]
    Version(u8),
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("bad room name")]
    Room,
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("{0} bytes after the end")]
    Trailing(usize),
}

/// The version byte of fleet messages.
const VERSION: u8 = 1;

impl Message {
    fn kind(&self) -> &'static str {
        match self {
            Self::Unicast { .. } => "unicast",
            Self::Broadcast { .. } => "broadcast",
            Self::Kick { .. } => "kick",
            Self::Failed { .. } => "failed",
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        let room = |out: &mut Vec<u8>, room: &RoomName| {
            // At most RoomName::MAX_LEN (64) bytes.
            out.push(room.as_str().len() as u8);
            out.extend_from_slice(room.as_str().as_bytes());
        };
        match self {
            Self::Unicast {
                origin,
                room: r,
                from,
                to,
                frame,
            } => {
                out.push(1);
                out.extend_from_slice(&origin.to_be_bytes());
                room(&mut out, r);
                out.extend_from_slice(from.as_bytes());
                out.extend_from_slice(to.as_bytes());
                out.extend_from_slice(frame);
            }
            Self::Broadcast {
                origin,
                room: r,
                from,
                frame,
            } => {
                out.push(2);
                out.extend_from_slice(&origin.to_be_bytes());
                room(&mut out, r);
                out.extend_from_slice(from.as_bytes());
                out.extend_from_slice(frame);
            }
            Self::Kick {
                room: r,
                node,
                session,
            } => {
                out.push(3);
                room(&mut out, r);
                out.extend_from_slice(node.as_bytes());
                out.extend_from_slice(&session.to_be_bytes());
            }
            Self::Failed {
                room: r,
                from,
                to,
                code,
            } => {
                out.push(4);
                room(&mut out, r);
                out.extend_from_slice(from.as_bytes());
                out.extend_from_slice(to.as_bytes());
                out.extend_from_slice(&code.0.to_be_bytes());
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8], max_frame: usize) -> Result<Self, MessageError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(MessageError::Version(version));
        }
        let kind = r.u8()?;
        let message = match kind {
            1 => {
                let origin = r.u64()?;
                let room = r.room()?;
                let (from, to) = (r.node()?, r.node()?);
                let frame = r.frame(max_frame)?;
                Self::Unicast {
                    origin,
                    room,
                    from,
                    to,
                    frame,
                }
            }
            2 => {
                let origin = r.u64()?;
                let room = r.room()?;
                let from = r.node()?;
                let frame = r.frame(max_frame)?;
                Self::Broadcast {
                    origin,
                    room,
                    from,
                    frame,
                }
            }
            3 => Self::Kick {
                room: r.room()?,
                node: r.node()?,
                session: r.u64()?,
            },
            4 => Self::Failed {
                room: r.room()?,
                from: r.node()?,
                to: r.node()?,
                code: ErrorCode(u16::from_be_bytes(r.take::<2>()?)),
            },
            other => return Err(MessageError::Kind(other)),
        };
        if !r.0.is_empty() {
            return Err(MessageError::Trailing(r.0.len()));
        }
        Ok(message)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(MessageError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64, MessageError> {
        Ok(u64::from_be_bytes(self.take::<8>()?))
    }
    fn node(&mut self) -> Result<NodeId, MessageError> {
        Ok(NodeId::from_bytes(self.take::<16>()?))
    }
    fn room(&mut self) -> Result<RoomName, MessageError> {
        let len = usize::from(self.u8()?);
        if self.0.len() < len {
            return Err(MessageError::Truncated);
        }
        let (name, rest) = self.0.split_at(len);
        self.0 = rest;
        let name = std::str::from_utf8(name).map_err(|_| MessageError::Room)?;
        RoomName::try_from(name.to_owned()).map_err(|_| MessageError::Room)
    }
    /// The rest: an encoded frame, at most `max` bytes.
    fn frame(&mut self, max: usize) -> Result<Bytes, MessageError> {
        if self.0.len() > max {
            return Err(MessageError::TooLarge(self.0.len()));
        }
        if self.0.is_empty() {
            return Err(MessageError::Truncated);
        }
        let frame = Bytes::copy_from_slice(self.0);
        self.0 = &[];
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(b: u8) -> NodeId {
        NodeId::from_bytes([b; 16])
    }

    #[test]
    fn messages_round_trip() {
        let room: RoomName = "lobby".to_owned().try_into().unwrap();
        for message in [
            Message::Unicast {
                origin: 0xfeed,
                room: room.clone(),
                from: node(1),
                to: node(2),
                frame: Bytes::from_static(b"frame"),
            },
            Message::Broadcast {
                origin: 7,
                room: room.clone(),
                from: node(3),
                frame: Bytes::from_static(b"b"),
            },
            Message::Kick {
                room: room.clone(),
                node: node(4),
                session: 99,
            },
            Message::Failed {
                room,
                from: node(5),
                to: node(6),
                code: ErrorCode::TARGET_BUSY,
            },
        ] {
            let bytes = message.encode();
            assert_eq!(Message::decode(&bytes, 64), Ok(message));
        }
    }

    #[test]
    fn the_kick_of_protocol_md_11_3_is_these_bytes() {
        let mut id = [0; 16];
        id[15] = 1;
        let kick = Message::Kick {
            room: "lobby".parse().unwrap(),
            node: NodeId::from_bytes(id),
            session: 7,
        };
        let hex: Vec<String> = kick.encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex.join(" "),
            "01 03 05 6c 6f 62 62 79 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
             00 00 00 00 00 00 00 07"
        );
    }

    #[test]
    fn bad_messages_are_typed_errors() {
        let kick = Message::Kick {
            room: RoomName::default(),
            node: node(1),
            session: 1,
        }
        .encode();
        assert_eq!(Message::decode(&[], 64), Err(MessageError::Truncated));
        assert_eq!(Message::decode(&[2, 3], 64), Err(MessageError::Version(2)));
        assert_eq!(Message::decode(&[1, 9], 64), Err(MessageError::Kind(9)));
        assert_eq!(
            Message::decode(&kick[..kick.len() - 1], 64),
            Err(MessageError::Truncated)
        );
        let mut long = kick.clone();
        long.push(0);
        assert_eq!(Message::decode(&long, 64), Err(MessageError::Trailing(1)));
        let mut bad_room = kick;
        bad_room[3] = 0x07; // a control character in the room name
        assert_eq!(Message::decode(&bad_room, 64), Err(MessageError::Room));
        let big = Message::Broadcast {
            origin: 1,
            room: RoomName::default(),
            from: node(1),
            frame: Bytes::from(vec![0; 65]),
        }
        .encode();
        assert_eq!(Message::decode(&big, 64), Err(MessageError::TooLarge(65)));
    }

    #[test]
    fn registration_values_parse_or_are_refused() {
        assert_eq!(parse_value(b"00000000000000ff 42"), Some((255, 42)));
        for bad in [
            &b""[..],
            b"ff 42",
            b"00000000000000ff",
            b"00000000000000fg 1",
            b"00000000000000ff x",
        ] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes, 128);
        }
    }
}
