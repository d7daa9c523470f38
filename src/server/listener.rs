//! `jit serve`'s accept loop: HTTP/1.1 connections bounded in time and in number, and a
//! shutdown with a deadline.
//!
//! `axum::serve` keeps a connection as long as its client likes: half a request line holds
//! a socket for minutes, and a shutdown waits for every client forever. Here each
//! connection is in one of two phases, tracked by [`Phase`]:
//!
//! - *waiting* for a request head: a new connection, or a kept-alive one after its last
//!   response. An idle connection is closed after [`ConnectionLimits::idle_timeout`]; once
//!   the first byte of a head arrives (at once, for a new connection) the whole head must
//!   be in within [`ConnectionLimits::header_read_timeout`].
//! - *busy* from the moment the head is complete until the response's body is dropped:
//!   the request timeout of the router governs it.
//!
//! The timers live in [`TimedIo`], the socket wrapper hyper reads through: a read that
//! would wait past the phase's deadline fails with `TimedOut`, and hyper closes the
//! connection. At most [`ConnectionLimits::max_connections`] connections are open; the
//! next client waits in the listen backlog. On shutdown the listener closes, waiting and
//! half-open connections are closed at once, busy ones finish their request (keep-alive
//! off), and after [`ConnectionLimits::shutdown_timeout`] whatever is left is closed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::config::ConnectionLimits;
use super::shutdown::ShutdownSignal;

/// Serves `router` on `listener` until `shutdown` fires, then drains within the deadline.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: ShutdownSignal,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        // A free slot first: beyond the cap, clients wait in the kernel's backlog.
        let slot = tokio::select! {
            () = shutdown.fired() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = shutdown.fired() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, a connection reset before it was accepted...:
                // the listener itself is fine; pause briefly so a resource shortage does
                // not spin.
                tracing::warn!(error = %err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, router, limits, shutdown).await;
            drop(slot);
        });
        // Reap finished connections so the set does not grow with the server's lifetime.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);

    let open = connections.len();
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            of = open,
            deadline_secs = limits.shutdown_timeout.as_secs_f64(),
            "shutdown deadline passed with requests still in flight; closing their connections"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    shutdown: ShutdownSignal,
) {
    // Small JSON answers: send them now rather than wait for more to coalesce.
    let _ = stream.set_nodelay(true);
    let phase = Arc::new(Phase::new());
    let io = TokioIo::new(TimedIo::new(stream, Arc::clone(&phase), limits));
    let service_phase = Arc::clone(&phase);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        service_phase.request_started();
        let mut request = request.map(Body::new);
        // What `ConnectInfo<SocketAddr>` extractors and `CallContext::peer` read.
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let phase = Arc::clone(&service_phase);
        async move {
            let response = router.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| EndsRequest {
                body,
                phase: Some(phase),
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The head timer is ours (it also covers idle keep-alive connections); hyper's own
    // would need its timer and counts differently.
    builder.header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        // The connection first: a head that is already complete becomes a request.
        biased;
        served = connection.as_mut() => {
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            return;
        }
        () = shutdown.fired() => {}
    }
    if !phase.is_busy() {
        // Idle, or half a request head: nothing to finish. Dropping closes the socket.
        return;
    }
    connection.as_mut().graceful_shutdown();
    if let Err(err) = connection.await {
        tracing::debug!(%peer, error = %err, "connection ended with an error during shutdown");
    }
}

/// Where one connection is: waiting for a request head, or busy with a request.
struct Phase {
    state: Mutex<PhaseState>,
}

struct PhaseState {
    /// Requests whose responses are not finished (HTTP/1.1 serves one at a time).
    busy: usize,
    /// While waiting: when the connection became idle.
    idle_since: Instant,
    /// While waiting: when the first byte of the next head arrived (for a new
    /// connection: when it opened).
    head_since: Option<Instant>,
    /// The reader to wake when the connection becomes idle, so the idle timer starts.
    reader: Option<Waker>,
}

/// Why a connection was closed by its timers.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    Header(Instant),
    Idle(Instant),
}

impl Phase {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(PhaseState {
                busy: 0,
                idle_since: now,
                // A client that connects owes a request head: no idle grace.
                head_since: Some(now),
                reader: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PhaseState> {
        // The state is a few plain values; a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_busy(&self) -> bool {
        self.lock().busy > 0
    }

    fn bytes_arrived(&self) {
        let mut state = self.lock();
        if state.busy == 0 && state.head_since.is_none() {
            state.head_since = Some(Instant::now());
        }
    }

    fn request_started(&self) {
        let mut state = self.lock();
        state.busy += 1;
        state.head_since = None;
    }

    fn request_finished(&self) {
        let mut state = self.lock();
        state.busy = state.busy.saturating_sub(1);
        if state.busy == 0 {
            state.idle_since = Instant::now();
            state.head_since = None;
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }

    /// The deadline of the current wait for a head, `None` while busy; remembers `reader`.
    fn deadline(&self, limits: &ConnectionLimits, reader: &Waker) -> Option<Deadline> {
        let mut state = self.lock();
        if state.busy > 0 {
            state.reader = Some(reader.clone());
            return None;
        }
        state.reader = None;
        Some(match state.head_since {
            Some(since) => Deadline::Header(since + limits.header_read_timeout),
            None => Deadline::Idle(state.idle_since + limits.idle_timeout),
        })
    }
}

/// The socket as hyper reads it: a read waiting past the phase's deadline fails.
struct TimedIo {
    inner: TcpStream,
    phase: Arc<Phase>,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
}

impl TimedIo {
    fn new(inner: TcpStream, phase: Arc<Phase>, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            phase,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.phase.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let Some(deadline) = this.phase.deadline(&this.limits, cx.waker()) else {
                    return Poll::Pending;
                };
                let at = match deadline {
                    Deadline::Header(at) | Deadline::Idle(at) => at,
                };
                if this.armed_for != Some(at) {
                    this.timer.as_mut().reset(at);
                    this.armed_for = Some(at);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        let what = match deadline {
                            Deadline::Header(_) => format!(
                                "no complete request head within {} s",
                                this.limits.header_read_timeout.as_secs_f64()
                            ),
                            Deadline::Idle(_) => {
                                format!("idle for {} s", this.limits.idle_timeout.as_secs_f64())
                            }
                        };
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                    }
                }
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that ends its request's busy phase when hyper is done with it (sent
/// in full, or dropped with the connection).
struct EndsRequest {
    body: Body,
    phase: Option<Arc<Phase>>,
}

impl Drop for EndsRequest {
    fn drop(&mut self) {
        if let Some(phase) = self.phase.take() {
            phase.request_finished();
        }
    }
}

impl http_body::Body for EndsRequest {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
