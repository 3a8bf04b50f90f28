//! The worker process's loop: connect back to the queue's owner, ask for one item at a time,
//! run the handler on it, and exit when told to retire or when the owner is gone.

use crate::pool::function::{self, Callable};
use crate::protocol::pool::{FunctionOffsets, ItemFailure};
use crate::protocol::process_queue::{Finished, ToQueue, ToWorker};
use crate::transport::Connection;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame::{self, FrameReader};
use crate::transport::server;

/// The function a worker process runs (through [`run`](crate::run)), calling the `fn(T)`
/// handler at `handler` through its trampoline, which decodes the `T` (offsets from the
/// owner, which the worker proved to be this same build before `run` called this).
///
/// It returns when the queue retires it or the connection to the owner ends; a connection
/// that cannot be opened, or a handler that is not code of this executable, ends it at once
/// (the owner sees the process gone and requeues).
pub(crate) fn drain(endpoint: Endpoint, generation: u64, max_frame: u32, handler: FunctionOffsets) {
    // SAFETY: the offsets were made by `function::offsets::<Plain, T, ()>` in the owner,
    // whose build this worker proved in its handshake before running this function.
    let Ok(handler) = (unsafe { function::resolve(handler) }) else {
        return;
    };
    let Ok(connection) = server::connect(&endpoint, max_frame) else {
        return;
    };
    let mut reader = FrameReader::new(max_frame);
    let mut finished = None;
    loop {
        let request = ToQueue::Next {
            generation,
            finished: finished.take(),
        };
        if connection.send(&request).is_err() {
            return;
        }
        match next_item(&connection, &mut reader, handler) {
            Some(done) => finished = Some(done),
            None => return,
        }
    }
}

/// Reads the owner's answer and runs the item it carries; `None` when there is nothing more
/// to do (retired, or the connection ended or carried something malformed).
fn next_item(
    connection: &Connection,
    reader: &mut FrameReader,
    handler: Callable,
) -> Option<Finished> {
    let frame = reader.read_frame(&mut connection.stream()).ok()??;
    match frame::decode::<ToWorker<'_>>(frame.bytes()).ok()? {
        ToWorker::Item { id, item } => Some(Finished {
            id,
            panic: handle(handler, item).err(),
        }),
        ToWorker::Retire => None,
    }
}

/// Decodes one item and calls the handler on it; a panic (or an item that does not decode,
/// which only a different build could send) comes back as its message (and where it
/// happened).
fn handle(handler: Callable, item: &[u8]) -> Result<(), String> {
    let mut output = Vec::new();
    handler
        .call(item, &mut output)
        .map_err(|failure| match failure {
            ItemFailure::Panicked(panic) => {
                format!("{}{}", panic.message, crate::panics::At(&panic.location))
            }
            ItemFailure::Decode(detail) => format!("undecodable item: {detail}"),
            other => format!("{other:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handlers_panic_comes_back_as_its_message() {
        let item = frame::encode(&3u64).unwrap();
        let handler: fn(u64) = |x| assert!(x != 3, "no threes");
        let offsets = function::offsets::<crate::pool::Plain, u64, ()>(handler);
        // SAFETY: the offsets were taken in this process.
        let handler = unsafe { function::resolve(offsets) }.unwrap();
        let check = |handler: Callable, item: &[u8]| handle(handler, item);
        // ` at <file:line:column>` follows when this process's panic hook notes locations.
        assert!(check(handler, &item).unwrap_err().starts_with("no threes"));
        assert_eq!(check(handler, &frame::encode(&4u64).unwrap()), Ok(()));
        assert!(
            check(handler, &[0xff])
                .unwrap_err()
                .starts_with("undecodable")
        );
    }
}
