//! Thread mode ([`Pool::threads`](crate::Pool::threads)): the same scheduler and dispatcher,
//! with worker threads in this process instead of worker processes. For I/O-bound work: the
//! items still travel encoded, so the maps behave exactly as with processes.
//!
//! A thread cannot be killed: a late item fails with its timeout and its thread is abandoned
//! (it ends when the item returns; its result is dropped) while a new thread takes its place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::error::Error;
use crate::pool::dispatcher::{Event, EventSender, Launcher, Report, WorkerLink};
use crate::pool::inbox::Inbox;
use crate::pool::outbox::ItemSink;
use crate::pool::scheduler::{ChunkItems, Item, JobId, Task, WorkerId};
use crate::pool::shared_bytes::SharedBytes;
use crate::pool::worker::run_chunk;
use crate::pool::writer::wire_chunk;
use crate::protocol::pool::{ItemFailure, Measured, Reporting};

/// Starts worker threads.
pub(crate) struct ThreadLauncher;

impl Launcher for ThreadLauncher {
    fn launch(&self, worker: WorkerId, events: EventSender) {
        let inbox = Arc::new(Inbox::<OwnedChunk>::new());
        let abandoned = Arc::new(AtomicBool::new(false));
        let sink: Arc<dyn ItemSink> = Arc::new(ThreadSink {
            worker,
            events: events.clone(),
            abandoned: Arc::clone(&abandoned),
            job_of_chunk: AtomicU64::new(0),
        });
        let started = std::thread::Builder::new()
            .name("skprocess-pool-thread".into())
            .spawn({
                let events = events.clone();
                let inbox = Arc::clone(&inbox);
                move || {
                    let mut output = Vec::new();
                    let admit = |ordinal| inbox.admit(ordinal);
                    while let Some((first, owned)) = inbox.next_chunk() {
                        owned.run(first, &admit, &sink, &mut output);
                    }
                    let _ = events.send(Event::Ended(worker, "stopped".into()));
                }
            });
        let link = started.map(|_| -> Box<dyn WorkerLink> {
            Box::new(ThreadLink {
                inbox,
                abandoned,
                worker,
                events: events.clone(),
            })
        });
        let _ = events.send(Event::Started(worker, link.map_err(Error::Io)));
    }
}

/// A chunk as a thread receives it.
struct OwnedChunk {
    job: JobId,
    task: Task,
    reporting: Reporting,
    items: Vec<Item>,
}

impl OwnedChunk {
    fn run(
        &self,
        first: u64,
        admit: &dyn Fn(u64) -> bool,
        sink: &Arc<dyn ItemSink>,
        output: &mut Vec<u8>,
    ) {
        let items = self.items.iter().map(Item::view);
        let chunk = wire_chunk(self.job, self.task, self.reporting, items);
        run_chunk(&chunk, first, admit, sink, output);
    }
}

/// Reports of a worker thread go straight to the dispatcher, one per item: there is no
/// connection to spare.
struct ThreadSink {
    worker: WorkerId,
    events: EventSender,
    abandoned: Arc<AtomicBool>,
    /// The job of the chunk running, for its measurement.
    job_of_chunk: AtomicU64,
}

impl ItemSink for ThreadSink {
    fn started(&self, job: u64, index: u64, _reporting: Reporting) {
        self.job_of_chunk.store(job, Ordering::SeqCst);
        self.running_now(job, index, None);
    }

    fn hold(&self, _ordinal: u64) -> bool {
        // Each item's start is reported anyway (`started`): a thread has no page.
        false
    }

    fn running_now(&self, job: u64, index: u64, spent: Option<u32>) {
        let report = Report::Running {
            job,
            index,
            since: Instant::now(),
            spent,
        };
        let _ = self.events.send(Event::Report(self.worker, report));
    }

    fn finished(
        &self,
        job: u64,
        index: u64,
        outcome: Result<&[u8], ItemFailure>,
        _reporting: Reporting,
    ) {
        if self.abandoned.load(Ordering::SeqCst) {
            return;
        }
        let results = vec![(index, outcome.map(|o| SharedBytes::from(o.to_vec())))];
        let report = Report::Results {
            job,
            results,
            measured: None,
        };
        let _ = self.events.send(Event::Report(self.worker, report));
    }

    fn chunk_done(&self, measured: Measured) {
        let report = Report::Results {
            job: self.job_of_chunk.load(Ordering::SeqCst),
            results: Vec::new(),
            measured: Some(measured),
        };
        let _ = self.events.send(Event::Report(self.worker, report));
    }

    fn overrun_ends_process(&self) -> bool {
        // The hook's thread cannot be stopped: it is abandoned, and the dispatcher replaces
        // this worker.
        self.abandoned.store(true, Ordering::SeqCst);
        let status = "abandoned a hook that overran its limit".to_owned();
        let _ = self.events.send(Event::Ended(self.worker, status));
        false
    }
}

/// The dispatcher's link to a worker thread.
struct ThreadLink {
    inbox: Arc<Inbox<OwnedChunk>>,
    abandoned: Arc<AtomicBool>,
    worker: WorkerId,
    events: EventSender,
}

impl WorkerLink for ThreadLink {
    fn send_chunk(&self, job: JobId, task: Task, reporting: Reporting, items: ChunkItems<'_>) {
        let chunk = OwnedChunk {
            job,
            task,
            reporting,
            items: items.to_items(),
        };
        self.inbox.push(items.len() as u64, chunk);
    }

    fn release(&self) {
        let next = self.inbox.release();
        let _ = self
            .events
            .send(Event::Report(self.worker, Report::Released { next }));
    }

    fn kill(&self) {
        // The thread runs on unwatched; whatever it reports is ignored from now on.
        self.abandoned.store(true, Ordering::SeqCst);
        self.inbox.release();
        self.stop();
        let _ = self.events.send(Event::Ended(
            self.worker,
            "abandoned after its item ran late".into(),
        ));
    }

    fn stop(&self) {
        self.inbox.close();
    }

    fn pid(&self) -> Option<u32> {
        None
    }
}
