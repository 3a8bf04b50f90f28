//! The worker process's loop: connect back to the queue's owner, ask for one item at a time,
//! run the handler on it, and exit when told to retire or when the owner is gone.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::de::DeserializeOwned;

use crate::child::engine::panic_message;
use crate::pool::function;
use crate::protocol::process_queue::{Finished, ToQueue, ToWorker};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::server;
use crate::transport::service::Endpoint;

/// The function a worker process runs (through [`run`](crate::run)): one monomorphised copy
/// per item type and handler type, so the handler is conjured from its zero-sized type.
///
/// It returns when the queue retires it or the connection to the owner ends; a connection
/// that cannot be opened ends it at once (the owner sees the process gone and requeues).
pub(crate) fn drain<T, F>(endpoint: Endpoint, generation: u64, max_frame: u32)
where
    T: DeserializeOwned,
    F: Fn(T) + Copy,
{
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
        match next_item::<T, F>(&connection, &mut reader) {
            Some(done) => finished = Some(done),
            None => return,
        }
    }
}

/// Reads the owner's answer and runs the item it carries; `None` when there is nothing more
/// to do (retired, or the connection ended or carried something malformed).
fn next_item<T, F>(connection: &Connection, reader: &mut FrameReader) -> Option<Finished>
where
    T: DeserializeOwned,
    F: Fn(T) + Copy,
{
    let frame = reader.read_frame(&mut connection.stream()).ok()??;
    match frame::decode::<ToWorker<'_>>(frame.bytes()).ok()? {
        ToWorker::Item { id, item } => Some(Finished {
            id,
            panic: handle::<T, F>(item).err(),
        }),
        ToWorker::Retire => None,
    }
}

/// Decodes one item and calls the handler on it; a panic (or an item that does not decode,
/// which only a different build could send) comes back as its message.
fn handle<T, F>(item: &[u8]) -> Result<(), String>
where
    T: DeserializeOwned,
    F: Fn(T) + Copy,
{
    let item: T = frame::decode_owned(item).map_err(|e| format!("undecodable item: {e}"))?;
    let handler: F = function::conjure();
    catch_unwind(AssertUnwindSafe(|| handler(item))).map_err(|payload| panic_message(&*payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handlers_panic_comes_back_as_its_message() {
        let item = frame::encode(&3u64).unwrap();
        fn check<F: Fn(u64) + Copy>(_: F, item: &[u8]) -> Result<(), String> {
            handle::<u64, F>(item)
        }
        let handler = |x: u64| assert!(x != 3, "no threes");
        assert_eq!(check(handler, &item), Err("no threes".to_owned()));
        assert_eq!(check(handler, &frame::encode(&4u64).unwrap()), Ok(()));
        assert!(
            check(handler, &[0xff])
                .unwrap_err()
                .starts_with("undecodable")
        );
    }
}
