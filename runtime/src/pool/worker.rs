//! A pool worker, the child side: proves it is the parent's build, then runs the chunks it
//! receives item by item and streams the results back.
//!
//! Three threads: the reader, which always drains the connection into the [`Inbox`] (the
//! parent sends at most [`PIPELINE`](super::scheduler::PIPELINE) chunks ahead, so what it
//! holds is bounded), answers the parent's releases from it, and ends the process when the
//! parent is gone; the main thread, which runs items; and, from the first chunk of
//! non-suspects on, the flusher ([`Outbox`]), which sends finished results every tick while a
//! chunk goes on and, when the chunk asks for it (a job with a timeout), says which item runs
//! once it has run for a tick — so the parent can time it; it sleeps otherwise. Which item a
//! crash hits, the parent reads from the worker's [`InHand`] page once the worker is gone: the
//! main thread stores each item's ordinal there before running it, so pinning a crash costs no
//! message per item.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::child::bootstrap::{self, Started};
use crate::child::pool_item::ItemHost;
use crate::child::watchdog::{self, Overrun};
use crate::pool::blocks;
use crate::pool::function;
use crate::pool::in_hand::InHand;
use crate::pool::inbox::Inbox;
use crate::pool::outbox::{ItemSink, Outbox};
use crate::protocol::Role;
use crate::protocol::pool::{
    Chunk, ItemFailure, Measured, RESULT_OVERHEAD, Reporting, TaskRef, ToPool, ToWorker,
    ToWorkerHead, WorkerStart,
};
use crate::registry::{self, ProcessEntry};
use crate::sys::shm;
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::role::readable;

/// Exit code of a worker that is not the parent's build or was sent garbage.
pub(crate) const EXIT_REFUSED: i32 = 71;

/// Runs a pool worker until its parent closes the connection.
pub(crate) fn run(connection: Connection, reader: FrameReader, started: Started) -> i32 {
    let connection = Arc::new(connection);
    let start = match check_build(&started.state) {
        Ok(start) => start,
        Err(refusal) => {
            let _ = connection.send(&ToPool::Refused(refusal));
            return EXIT_REFUSED;
        }
    };
    let mut reader = reader;
    // A pool's worker keeps the item it holds in a page its parent reads when it dies; a
    // `run`, whose one isolated chunk reports its item's start anyway, is asked for none.
    let Ok(in_hand) = send_ready(&connection, &started, start.in_hand) else {
        return EXIT_REFUSED;
    };
    let limit = (started.config.max_frame_bytes as usize).saturating_sub(RESULT_OVERHEAD);
    let outbox = Arc::new(Outbox::new(Arc::clone(&connection), limit, in_hand));
    let inbox = Arc::new(Inbox::new());
    // A chunk that came with the start (a `run`'s only one) is read here rather than by the
    // reader, and run without waiting for another thread to start up and hand it over.
    let chunk_came = reader.has_buffered_frame()
        || readable(connection.stream(), Some(Duration::ZERO)).unwrap_or(false);
    if chunk_came {
        // A `run` shut its writing side right after the chunk: reading that end here too lets
        // this thread exit as soon as the chunk is done, whenever the reader gets to it.
        while read_one(&connection, &mut reader, &inbox)
            && (reader.has_buffered_frame()
                || readable(connection.stream(), Some(Duration::ZERO)).unwrap_or(false))
        {}
    }
    let spawned = spawn("skprocess-pool-reader", {
        let connection = Arc::clone(&connection);
        let inbox = Arc::clone(&inbox);
        move || read_chunks(&connection, reader, &inbox)
    });
    if spawned.is_err() {
        return EXIT_REFUSED;
    }
    // The flusher starts with the first chunk that needs it: an isolated chunk (all a `run`
    // sends) reports each start and result itself, so a one-off worker never pays for it.
    // A pool's worker, idle until its first chunk, starts it now, off that chunk's way.
    let mut flusher_started = false;
    if !chunk_came {
        let outbox = Arc::clone(&outbox);
        if spawn("skprocess-pool-flusher", move || outbox.flush_every_tick()).is_err() {
            return EXIT_REFUSED;
        }
        flusher_started = true;
    }
    let sink: Arc<dyn ItemSink> = Arc::clone(&outbox) as Arc<dyn ItemSink>;
    let mut output = Vec::new();
    let admit = |ordinal| inbox.admit(ordinal);
    while let Some((first, bytes)) = inbox.next_chunk() {
        let Ok(ToWorker::Chunk(chunk)) = frame::decode::<ToWorker<'_>>(&bytes) else {
            return EXIT_REFUSED;
        };
        if !chunk.reporting.each() && !flusher_started {
            let outbox = Arc::clone(&outbox);
            if spawn("skprocess-pool-flusher", move || outbox.flush_every_tick()).is_err() {
                return EXIT_REFUSED;
            }
            flusher_started = true;
        }
        match resolve(chunk.task) {
            Resolved::Function(callable) if outbox.takes_blocks(chunk.reporting) => {
                blocks::run_in_blocks(&chunk, first, &inbox, &outbox, &callable, &mut output);
            }
            _ => run_chunk(&chunk, first, &admit, &sink, &mut output),
        }
    }
    0
}

/// Answers the start with `Ready`, with an [`InHand`] page when `page` asks for one and this
/// system can make it (else the parent learns of items from frames alone); the page.
fn send_ready(
    connection: &Connection,
    started: &Started,
    page: bool,
) -> Result<Option<InHand>, Error> {
    if let Some((in_hand, fd)) = page.then(InHand::create).and_then(Result::ok) {
        let frame = frame::encode_frame(&ToPool::Ready, started.config.max_frame_bytes)?;
        shm::send_with_fd(connection.stream(), &frame, &fd)?;
        return Ok(Some(in_hand));
    }
    connection.send(&ToPool::Ready)?;
    Ok(None)
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map(drop)
}

/// Refuses a parent of another build: its code addresses would mean nothing here.
pub(crate) fn check_build(state: &[u8]) -> Result<WorkerStart, String> {
    let start: WorkerStart =
        frame::decode_owned(state).map_err(|e| format!("malformed worker start: {e}"))?;
    if start.build != function::build_identity() {
        return Err(
            "the worker is not the same build as the pool's process (the executable \
                    changed on disk since the pool's process started); no code address was used"
                .to_owned(),
        );
    }
    Ok(start)
}

/// The reader: queues each chunk for the main thread and answers releases; ends the process
/// when the parent is gone or sends garbage. A parent that only shut its writing side (a
/// `run`, right after its chunk) sends nothing more: the chunks held run, their results go
/// out and the worker exits, without waiting to hear that the parent read them.
fn read_chunks(connection: &Connection, mut reader: FrameReader, inbox: &Inbox<Vec<u8>>) {
    while read_one(connection, &mut reader, inbox) {}
    // Until the parent is gone both ways: then nobody reads the results.
    connection.stream().wait_hangup();
    bootstrap::exit_parent_gone()
}

/// Reads one frame, for [`read_chunks`] and for the main thread's first when it came with the
/// start: queues a chunk, answers a release; `false` at the end of the input (the inbox is
/// closed then).
fn read_one(connection: &Connection, reader: &mut FrameReader, inbox: &Inbox<Vec<u8>>) -> bool {
    let frame = match reader.read_frame(&mut connection.stream()) {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            inbox.close();
            return false;
        }
        Err(_) => bootstrap::exit_parent_gone(),
    };
    match ToWorkerHead::read(frame.bytes()) {
        Ok(ToWorkerHead::Chunk { items, .. }) => inbox.push(items, frame.bytes().to_vec()),
        Ok(ToWorkerHead::Release) => {
            let next = inbox.release();
            if connection.send(&ToPool::Released { next }).is_err() {
                bootstrap::exit_parent_gone();
            }
        }
        Err(_) => crate::sys::exit_now(EXIT_REFUSED),
    }
    true
}

/// What a chunk's task resolves to in this process.
enum Resolved {
    Function(function::Callable),
    Process(&'static ProcessEntry),
    Unknown(String),
}

fn resolve(task: TaskRef<'_>) -> Resolved {
    match task {
        // SAFETY: the offsets come from the parent, which this worker proved to be the same
        // build before reading any chunk (`check_build`), or from this very process.
        TaskRef::Function { offset } => match unsafe { function::resolve(offset) } {
            Ok(callable) => Resolved::Function(callable),
            Err(detail) => Resolved::Unknown(detail),
        },
        TaskRef::Process { key } => {
            match registry::find(key).filter(|e| e.role() == Role::Lifecycle) {
                Some(entry) => Resolved::Process(entry),
                None => Resolved::Unknown(format!(
                    "no process type `{key}` is registered in this binary"
                )),
            }
        }
    }
}

/// Runs a chunk's items in order, reporting each to `sink`; `first` is the ordinal of its
/// first item, and `admit` says whether an item may still start (see [`Inbox`]): the chunk
/// ends at the first one that may not.
pub(crate) fn run_chunk(
    chunk: &Chunk<'_>,
    first: u64,
    admit: &dyn Fn(u64) -> bool,
    sink: &Arc<dyn ItemSink>,
    output: &mut Vec<u8>,
) {
    let task = resolve(chunk.task);
    let started = Instant::now();
    let mut ran = 0u32;
    let mut items = (first..).zip(&chunk.items);
    // The next item is admitted before the one that ran is reported, so both go to the
    // sink in one report.
    let mut next = items.next().filter(|(ordinal, _)| admit(*ordinal));
    if let Some((_, item)) = next {
        sink.started(chunk.job, item.index, chunk.reporting);
    }
    while let Some((ordinal, item)) = next {
        ran = ran.saturating_add(1);
        let spent = chunk.lives_spent_by(item.index);
        let held = sink.hold(ordinal);
        if !held && matches!(task, Resolved::Process(_)) && !chunk.reporting.each() {
            // A crash must be pinned on a process item at once: an unpinned one would run
            // again as a suspect without spending a life. A page pins it at no cost.
            sink.running_now(chunk.job, item.index, None);
        }
        let outcome = execute(&task, (item.bytes, spent), output, || {
            Arc::new(ItemReports {
                sink: Arc::clone(sink),
                job: chunk.job,
                index: item.index,
            })
        });
        let outcome = outcome.map(|()| output.as_slice());
        next = items.next().filter(|(ordinal, _)| admit(*ordinal));
        let then = next.map(|(_, item)| item.index);
        sink.finished_then_started(chunk.job, item.index, outcome, chunk.reporting, then);
    }
    sink.chunk_done(Measured {
        items: ran,
        nanos: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
    });
}

/// Runs one item: its bytes, and the lives it spent on earlier attempts (for a process item).
fn execute(
    task: &Resolved,
    (bytes, spent): (&[u8], u32),
    output: &mut Vec<u8>,
    host: impl FnOnce() -> Arc<dyn ItemHost>,
) -> Result<(), ItemFailure> {
    match task {
        Resolved::Function(callable) => callable.call(bytes, output),
        Resolved::Process(entry) => {
            *output = (entry.run_in_pool)(bytes, spent, host())
                .map_err(|failure| ItemFailure::Process(Box::new(failure)))?;
            Ok(())
        }
        Resolved::Unknown(detail) => Err(ItemFailure::UnknownTask(detail.clone())),
    }
}

/// What a process item reports to its worker. The lives it spends go to the parent at once.
/// A hook that overran with lives left ends the worker like a crash, after saying which
/// item runs, so the pool retries exactly that item with one life less, as a child's
/// supervisor would; without lives the item fails with the timeout and the worker ends (the
/// parent replaces it). A worker thread cannot end: it is abandoned instead.
struct ItemReports {
    sink: Arc<dyn ItemSink>,
    job: u64,
    index: u64,
}

impl ItemHost for ItemReports {
    fn lives_spent(&self, spent: u32) {
        self.sink.running_now(self.job, self.index, Some(spent));
    }

    fn overrun(&self, overrun: Overrun, retry: bool) {
        if retry {
            self.sink.running_now(self.job, self.index, None);
        } else {
            let failure = ItemFailure::Process(Box::new(overrun.into_failure()));
            self.sink
                .finished(self.job, self.index, Err(failure), Reporting::Each);
        }
        if self.sink.overrun_ends_process() {
            watchdog::exit_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_refuses_a_parent_of_another_build_and_accepts_its_own() {
        let own = frame::encode(&WorkerStart {
            build: function::build_identity().to_vec(),
            in_hand: true,
        })
        .unwrap();
        assert!(check_build(&own).is_ok_and(|start| start.in_hand));
        let mut other = function::build_identity().to_vec();
        if let Some(last) = other.last_mut() {
            *last ^= 0xff;
        }
        let other = frame::encode(&WorkerStart {
            build: other,
            in_hand: false,
        })
        .unwrap();
        let refusal = check_build(&other).unwrap_err();
        assert!(refusal.contains("not the same build"), "{refusal}");
        assert!(check_build(&[0xff]).is_err());
    }
}
