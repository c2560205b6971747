//! What a connection may hold, and for how long: `Guard`, the axum-server acceptor that every
//! listener's connections pass through.
//!
//! - **A slot.** At most `MAX_CONNECTIONS` connections are served at once: a new one waits for a
//!   free slot (a semaphore permit) for up to `HEADER_READ_TIMEOUT_SECS`, then is closed
//!   unanswered. The permit lives in the connection's `Deadline` stream, so it is given back
//!   when hyper drops the connection, however it ends.
//! - **A deadline between requests.** While no request of a connection is being handled, the
//!   connection must deliver a complete request head within `HEADER_READ_TIMEOUT_SECS` of
//!   opening (after the TLS handshake) or of its previous response; otherwise reads fail and
//!   hyper closes it. That one rule covers a client that sends nothing, one that trickles its
//!   headers, an idle keep-alive connection and an idle HTTP/2 connection. (hyper's own
//!   `header_read_timeout`, also set, covers HTTP/1 heads only: it starts after hyper has
//!   sniffed the protocol, and a client that sends nothing, or the first bytes of the HTTP/2
//!   preface, is never sniffed.) `Tracked`, the per-connection service, tells `Deadline`
//!   when requests start and end. A request being handled is bounded by `REQUEST_TIMEOUT`
//!   instead, its body upload included.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The acceptor that wraps a listener's own (`inner`: plain, or TLS): a slot per connection and
/// a deadline for each request head.
#[derive(Clone)]
pub(super) struct Guard<A> {
    inner: A,
    slots: Arc<Semaphore>,
    header_timeout: Duration,
}

impl<A> Guard<A> {
    /// `inner`'s connections, sharing `slots` with every other listener's.
    pub(super) fn new(inner: A, slots: Arc<Semaphore>, header_timeout: Duration) -> Self {
        Self {
            inner,
            slots,
            header_timeout,
        }
    }
}

type Accepted<I, S> = io::Result<(Deadline<I>, Tracked<S>)>;

impl<A, S> Accept<TcpStream, S> for Guard<A>
where
    A: Accept<TcpStream, S> + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
    S: Send + 'static,
{
    type Stream = Deadline<A::Stream>;
    type Service = Tracked<A::Service>;
    type Future = Pin<Box<dyn Future<Output = Accepted<A::Stream, A::Service>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let inner = self.inner.clone();
        let slots = self.slots.clone();
        let limit = self.header_timeout;
        Box::pin(async move {
            let Ok(Ok(slot)) = tokio::time::timeout(limit, slots.acquire_owned()).await else {
                tracing::debug!("no free connection slot in time: connection closed");
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no free slot"));
            };
            let (stream, service) = inner.accept(stream, service).await?;
            let activity = Arc::new(Activity::new());
            Ok((
                Deadline::new(stream, activity.clone(), limit, slot),
                Tracked {
                    inner: service,
                    activity,
                },
            ))
        })
    }
}

/// Whether a connection has requests being handled, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    /// When the connection last became idle; `None` while a request is being handled.
    fn idle_since(&self) -> Option<Instant> {
        let idle_since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        (self.in_flight.load(Ordering::Acquire) == 0).then_some(idle_since)
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self) {
        let mut idle_since = self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *idle_since = Instant::now();
        }
    }
}

/// A connection's stream: reads fail once the connection has been idle past its deadline.
/// Holds the connection's slot.
pub(super) struct Deadline<I> {
    io: I,
    activity: Arc<Activity>,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<I> Deadline<I> {
    fn new(io: I, activity: Arc<Activity>, limit: Duration, slot: OwnedSemaphorePermit) -> Self {
        Self {
            io,
            activity,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            _slot: slot,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Deadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(idle_since) = this.activity.idle_since() {
            let deadline = idle_since + this.limit;
            if this.timer.deadline() != deadline {
                this.timer.as_mut().reset(deadline);
            }
            if this.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request head within the header read timeout",
                )));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Deadline<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A connection's service: marks the connection busy from the moment a request head has
/// arrived until its response is ready.
#[derive(Clone)]
pub(super) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: tower::Service<R>, R> tower::Service<R> for Tracked<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Handling<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.activity.begin();
        Handling {
            inner: self.inner.call(request),
            _busy: Busy(self.activity.clone()),
        }
    }
}

/// Ends a request's busy time when dropped: answered, failed or abandoned.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

pin_project_lite::pin_project! {
    /// The response future of a tracked request.
    pub(super) struct Handling<F> {
        #[pin]
        inner: F,
        _busy: Busy,
    }
}

impl<F: Future> Future for Handling<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}
