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

mod health;
mod layout;
mod tasks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mesh_proto::fleet::Message;
use mesh_proto::{ErrorCode, NodeId, RoomName};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::health::{Health, Part};
use self::layout::{
    Keys, REANNOUNCE, REGISTER, SAMPLE, SAMPLE_FN, Script, Scripts, UNICAST, UNREGISTER,
    parse_value, script,
};
use self::tasks::{keep_lease, subscribe, write_ops};
use super::{Delivery, Local, Outbound, Registration};
use crate::Error;
use crate::config::Config;
use crate::metrics::{Kind, Metrics};
use crate::session::error_frame;

/// Operations written to Redis in one pipeline, at most.
const BATCH: usize = 256;

/// Failed unregistrations remembered to retry when Redis is back; beyond, the keys expire.
const MAX_PENDING_REMOVALS: usize = 65_536;

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
            health: Mutex::new(Health::starting()),
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
        lock(&self.inner.health).degraded()
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
                    frame: frame.to_vec(),
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
                    frame: frame.to_vec(),
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
                    bytes: Bytes::from(frame),
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
                let (_, dropped) = self.local.broadcast(&room, &from, &Bytes::from(frame));
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
