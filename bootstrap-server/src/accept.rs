//! The accept loop: `axum::serve`'s listener, with the process's open-files limit in mind.
//!
//! At the limit, `accept` fails with `EMFILE` (or `ENFILE`, the system's table) while the
//! connection stays queued, so the listener stays readable: retrying at once spins, and
//! axum's own loop sleeps a second and logs each time while the clients hang. Here the
//! listener keeps one descriptor in reserve (`/dev/null`): at the limit it closes the
//! spare, accepts the waiting connection, closes that at once (the client sees its
//! connection closed, promptly, instead of hanging) and opens the spare again: the classic
//! answer (libev's manual, "the special problem of accept()ing when you can't"). Other
//! failures back off for [`BACKOFF`]; a client that left before it was accepted is skipped.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::Shared;
use crate::metrics::Reason;

/// How long the loop waits after an accept failure it cannot act on.
pub(crate) const BACKOFF: Duration = Duration::from_millis(100);

/// How often, at most, an accept failure is logged (the rest are counted in the metrics).
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A TCP listener that refuses, rather than leaves hanging, the connections it has no
/// descriptor for.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: TcpListener,
    /// The descriptor held in reserve, `None` while it cannot be reopened.
    spare: Option<File>,
    shared: Arc<Shared>,
    /// When an accept failure was last logged, and how many since were not.
    last_log: Option<Instant>,
    unlogged: u64,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, shared: Arc<Shared>) -> Self {
        let spare = open_spare();
        if spare.is_none() {
            tracing::warn!(
                "cannot hold a spare descriptor: at the open-files limit, connections will wait \
                 instead of being refused"
            );
        }
        Self {
            listener,
            spare,
            shared,
            last_log: None,
            unlogged: 0,
        }
    }

    /// Handles one failed `accept`: refuses a connection at the open-files limit, or waits.
    async fn on_error(&mut self, error: io::Error) {
        let failure = Failure::of(&error);
        self.shared
            .metrics
            .accept_errors
            .get_or_create(&Reason {
                reason: failure.label(),
            })
            .inc();
        match failure {
            // The client left before it was accepted: nothing to wait for.
            Failure::Aborted => {}
            Failure::FdLimit => match self.refuse_one() {
                Refusal::Refused => self.log(format_args!(
                    "at the open-files limit ({error}): refused a connection; lower \
                     --max-connections so that the excess gets SERVER_FULL, or raise the limit"
                )),
                // accept(2) takes a descriptor before it looks at the queue, so it fails
                // with EMFILE on an empty queue too. The attempt above found it empty and
                // cleared the listener's readiness: the next accept waits for a connection.
                Refusal::NothingWaiting => {}
                Refusal::NoSpare => {
                    self.log(format_args!(
                        "at the open-files limit ({error}) with no spare descriptor: waiting \
                         {BACKOFF:?}"
                    ));
                    tokio::time::sleep(BACKOFF).await;
                    self.spare = self.spare.take().or_else(open_spare);
                }
            },
            Failure::Other => {
                self.log(format_args!("accept failed: {error}; waiting {BACKOFF:?}"));
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }

    /// Frees the spare descriptor, accepts the waiting connection and closes it at once,
    /// then takes the spare again.
    fn refuse_one(&mut self) -> Refusal {
        let Some(spare) = self.spare.take() else {
            return Refusal::NoSpare;
        };
        drop(spare);
        // Polled once, never awaited: with no connection waiting, there is nothing to refuse.
        let refusal = match self.listener.accept().now_or_never() {
            Some(Ok((stream, _))) => {
                // Closed with the client's request unread, the connection is reset: the
                // client learns at once.
                drop(stream);
                self.shared.metrics.accept_refused.inc();
                Refusal::Refused
            }
            None => Refusal::NothingWaiting,
            // The freed slot was taken (by another thread) first.
            Some(Err(_)) => Refusal::NoSpare,
        };
        self.spare = open_spare();
        refusal
    }

    /// Logs at most once per [`LOG_EVERY`], with the number of failures not logged since.
    fn log(&mut self, what: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.last_log.is_some_and(|last| now < last + LOG_EVERY) {
            self.unlogged += 1;
            return;
        }
        let unlogged = std::mem::take(&mut self.unlogged);
        tracing::warn!(unlogged, "{what}");
        self.last_log = Some(now);
    }
}

impl axum::serve::Listener for Acceptor {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(error) => self.on_error(error).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// The spare descriptor: any file will do; `/dev/null` exists and costs nothing.
fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

/// What became of an attempt to refuse a connection at the open-files limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// A connection was accepted and closed at once.
    Refused,
    /// No connection was waiting.
    NothingWaiting,
    /// No descriptor could be freed for the accept.
    NoSpare,
}

/// Why an `accept` failed, as far as the loop is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The process (`EMFILE`) or the system (`ENFILE`) has no descriptor left.
    FdLimit,
    /// The connection failed before it was accepted (as hyper and axum tell it).
    Aborted,
    /// Anything else (e.g. `ENOBUFS`, `ENOMEM`).
    Other,
}

impl Failure {
    fn of(error: &io::Error) -> Self {
        if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            Self::FdLimit
        } else if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            Self::Aborted
        } else {
            Self::Other
        }
    }

    /// The `reason` label of `bootstrap_accept_errors_total`.
    fn label(self) -> &'static str {
        match self {
            Self::FdLimit => "fd_limit",
            Self::Aborted => "aborted",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_told_from_other_failures() {
        let of = |errno| Failure::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::EMFILE), Failure::FdLimit);
        assert_eq!(of(libc::ENFILE), Failure::FdLimit);
        assert_eq!(of(libc::ECONNABORTED), Failure::Aborted);
        assert_eq!(of(libc::ENOBUFS), Failure::Other);
    }
}
