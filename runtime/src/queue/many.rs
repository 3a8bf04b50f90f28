//! `put_many` and `put_many_timeout`: one put at a time in the creating process, batches of
//! one round trip each from another process, and the messages a timed one had no room for
//! given back in order.

use std::time::Instant;

use crate::error::{Error, TrySendError};
use crate::queue::remote::with_link;
use crate::queue::{FRAME_SLACK, Msg, Queue, QueueData, wait_left};

impl<T: QueueData> Queue<T> {
    pub(super) fn put_many_until(
        &self,
        messages: impl IntoIterator<Item = Msg<T>>,
        until: Option<Instant>,
    ) -> Result<(), TrySendError<Vec<Msg<T>>>> {
        let mut messages = messages.into_iter();
        #[cfg(feature = "cluster")]
        if let Some(stream) = &self.cluster {
            let mut messages: Vec<Msg<T>> = messages.collect();
            let encoded = messages
                .iter()
                .map(|message| self.encode(message))
                .collect::<Result<Vec<_>, _>>()?;
            let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            let sent = stream.put(&slices, until)?;
            return give_back(messages.split_off(sent.min(messages.len())));
        }
        if self.broker.is_some() {
            return put_each(messages, |message| self.send(message, until));
        }
        let budget = self.max_frame.saturating_sub(FRAME_SLACK) as usize;
        let mut payload = Vec::new();
        // The messages of `payload`, to give back those the broker had no room for.
        let mut batch = Vec::new();
        while let Some(message) = messages.next() {
            let encoded = self.encode(&message)?;
            if !payload.is_empty() && payload.len() + encoded.len() + 4 > budget {
                let sent = self.send_many(&payload, until)?;
                if sent < batch.len() {
                    let mut unsent = batch.split_off(sent);
                    unsent.push(message);
                    unsent.extend(messages);
                    return give_back(unsent);
                }
                payload.clear();
                batch.clear();
            }
            crate::protocol::queue::append_message(&mut payload, &encoded);
            batch.push(message);
        }
        if payload.is_empty() {
            return Ok(());
        }
        let sent = self.send_many(&payload, until)?;
        give_back(batch.split_off(sent.min(batch.len())))
    }

    /// Sends a batch; how many of its messages, from the first, were put by `until`.
    fn send_many(&self, payload: &[u8], until: Option<Instant>) -> Result<usize, Error> {
        let accepted = with_link(&self.endpoint, self.max_frame, |link| {
            link.put_many(payload, wait_left(until))
        })?;
        Ok(usize::try_from(accepted).unwrap_or(usize::MAX))
    }
}

/// `Ok` when every message was put, else the ones that were not.
/// Puts `messages` one at a time with `send`; the first that finds no room comes back with
/// every one after it, in order (the rest of `messages` is collected for that).
pub(super) fn put_each<M>(
    mut messages: impl Iterator<Item = M>,
    mut send: impl FnMut(M) -> Result<(), TrySendError<M>>,
) -> Result<(), TrySendError<Vec<M>>> {
    while let Some(message) = messages.next() {
        if let Err(error) = send(message) {
            return Err(match error {
                TrySendError::Full(first) => {
                    TrySendError::Full(std::iter::once(first).chain(messages).collect())
                }
                TrySendError::Failed(error) => TrySendError::Failed(error),
            });
        }
    }
    Ok(())
}

fn give_back<M>(unsent: Vec<M>) -> Result<(), TrySendError<Vec<M>>> {
    if unsent.is_empty() {
        Ok(())
    } else {
        Err(TrySendError::Full(unsent))
    }
}
