//! The one wait on many streams, answered from what named pipes offer: a stream knows its
//! readiness from its reader thread's inbox and signals the events of the threads waiting on
//! it; a listener's pending `ConnectNamedPipe` signals its own event. A wait registers this
//! thread's event with every stream, then sleeps in `WaitForMultipleObjects` on it and the
//! listeners' events, rechecking after each wake-up. Callers only ask "which of these can be
//! read, and which has hung up", as on Unix.

use std::io;
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{HANDLE, WAIT_FAILED, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{WaitForMultipleObjects, WaitForSingleObject};

use super::overlapped::{Event, millis};
use super::socket::{Listener, Stream};

/// Something [`wait_readable`] can watch: a listener (readable when a client connected) or a
/// stream (readable when bytes or the end of the stream wait).
#[derive(Clone, Copy)]
pub(crate) struct Source<'a>(Kind<'a>);

#[derive(Clone, Copy)]
enum Kind<'a> {
    Listener(&'a Listener),
    Stream(&'a Stream),
}

impl<'a> From<&'a Listener> for Source<'a> {
    fn from(listener: &'a Listener) -> Self {
        Source(Kind::Listener(listener))
    }
}

impl<'a> From<&'a Stream> for Source<'a> {
    fn from(stream: &'a Stream) -> Self {
        Source(Kind::Stream(stream))
    }
}

/// What [`wait_readable`] found on one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// A read (or accept) will not block.
    pub(crate) readable: bool,
    /// The peer closed or the connection broke.
    pub(crate) hung_up: bool,
}

thread_local! {
    /// The event stream ends signal for this thread's waits (auto reset).
    static WAITER: Option<Event> = Event::new(false).ok();
}

/// Waits until at least one of `sources` is readable or hung up, for at most `timeout`
/// (`None`: without limit); returns one [`Readiness`] per source, in order.
pub(crate) fn wait_readable(
    sources: &[Source<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<Readiness>> {
    let ready = check(sources);
    if timeout == Some(Duration::ZERO) || any(&ready) {
        return Ok(ready);
    }
    WAITER.with(|waiter| {
        let waiter = waiter
            .as_ref()
            .ok_or_else(|| io::Error::other("no event to wait on"))?;
        register(sources, waiter.raw(), true);
        let result = sleep_until_ready(sources, waiter, timeout);
        register(sources, waiter.raw(), false);
        result
    })
}

fn sleep_until_ready(
    sources: &[Source<'_>],
    waiter: &Event,
    timeout: Option<Duration>,
) -> io::Result<Vec<Readiness>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let handles: Vec<HANDLE> = std::iter::once(waiter.raw())
        .chain(
            sources
                .iter()
                .flat_map(|source| match source.0 {
                    Kind::Listener(listener) => Some(listener.events()),
                    Kind::Stream(_) => None,
                })
                .flatten(),
        )
        .collect();
    // WaitForMultipleObjects watches at most 64 handles.
    let count = u32::try_from(handles.len())
        .ok()
        .filter(|&n| n <= 64)
        .ok_or(io::ErrorKind::InvalidInput)?;
    loop {
        // Registered before this check, so a change after it signals the waiter.
        let ready = check(sources);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if any(&ready) || left.is_some_and(|left| left.is_zero()) {
            return Ok(ready);
        }
        // SAFETY: every handle is a live event for the duration of the call.
        let woke = unsafe { WaitForMultipleObjects(count, handles.as_ptr(), 0, millis(left)) };
        if woke == WAIT_FAILED {
            return Err(io::Error::last_os_error());
        }
    }
}

fn register(sources: &[Source<'_>], event: HANDLE, add: bool) {
    for source in sources {
        if let Kind::Stream(stream) = source.0 {
            stream.end().register(event, add);
        }
    }
}

fn check(sources: &[Source<'_>]) -> Vec<Readiness> {
    sources
        .iter()
        .map(|source| match source.0 {
            Kind::Listener(listener) => Readiness {
                // SAFETY: the listener's events are live; a zero wait only tests one.
                readable: listener
                    .events()
                    .any(|event| unsafe { WaitForSingleObject(event, 0) } == WAIT_OBJECT_0),
                hung_up: false,
            },
            Kind::Stream(stream) => {
                let (readable, hung_up) = stream.end().readiness();
                Readiness { readable, hung_up }
            }
        })
        .collect()
}

fn any(ready: &[Readiness]) -> bool {
    ready.iter().any(|r| r.readable || r.hung_up)
}

// Here rather than in socket.rs: making a pair waits for the listener, and socket.rs does
// not depend on the wait.
impl Stream {
    /// Two connected streams, for tests and in-process wake-up channels.
    #[allow(dead_code)]
    pub(crate) fn pair() -> io::Result<(Self, Self)> {
        let mut unique = [0u8; 16];
        getrandom::fill(&mut unique).map_err(|e| io::Error::other(e.to_string()))?;
        let unique: String = unique.iter().map(|b| format!("{b:02x}")).collect();
        let listener = Listener::bind(None, &unique)?;
        let client = Self::connect(listener.address())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(server) = listener.accept()? {
                // Accepted streams do not block; a pair's ends do, as on Unix.
                server.set_nonblocking(false)?;
                return Ok((client, server));
            }
            if Instant::now() >= deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let _ = wait_readable(&[(&listener).into()], Some(Duration::from_millis(50)));
        }
    }
}
