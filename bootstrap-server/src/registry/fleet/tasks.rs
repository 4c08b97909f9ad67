//! The three tasks of a fleet server: the writer of the queue towards Redis, the keeper of
//! the lease (and of the re-announcements), and the subscription to its channels.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{BATCH, Inner, Op, Part};

/// Pauses between attempts to subscribe again.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// Writes the queued operations to Redis, a batch at a time.
pub(super) async fn write_ops(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Op>,
    stop: CancellationToken,
) {
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
pub(super) async fn keep_lease(inner: Arc<Inner>, stop: CancellationToken) {
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
pub(super) async fn subscribe(inner: Arc<Inner>, stop: CancellationToken) {
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
