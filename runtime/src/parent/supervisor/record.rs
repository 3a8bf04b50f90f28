//! What a frame from the child means, whoever read it (a listener or the driver): a payload
//! joins the outbox (spending one of the child's credits), anything else updates the shared
//! view, and what the supervisor must hear of it is returned.

use crate::error::Error;
use crate::parent::shared::{Payload, ProcessShared};
use crate::parent::supervisor::handoff::Reported;
use crate::parent::supervisor::machine::Report;
use crate::protocol::lifecycle::ToParent;
use crate::timing::monotonic_instant;
use crate::transport::frame::{self, Frame};

/// Records a frame: a payload joins `arrived`, anything else goes to the shared view after
/// the payloads before it. Returns what the supervisor must hear of it.
pub(crate) fn dispatch(
    shared: &ProcessShared,
    frame: Frame<'_>,
    arrived: &mut Vec<Payload>,
) -> Result<Option<Reported>, String> {
    let message: ToParent<'_> = frame::decode(frame.bytes()).map_err(|e| e.to_string())?;
    let tell_start = match message {
        ToParent::Tell(payload) => frame.bytes().len() - payload.len(),
        other => {
            queue_messages(shared, arrived)?;
            return Ok(record(shared, other));
        }
    };
    // A large frame is kept whole, with the payload's offset, rather than copied.
    let payload = match frame {
        Frame::Owned(bytes) => Payload {
            bytes,
            start: tell_start,
        },
        Frame::Buffered(bytes) => Payload {
            bytes: bytes[tell_start..].to_vec(),
            start: 0,
        },
    };
    arrived.push(payload);
    Ok(None)
}

/// Records any message but a payload.
fn record(shared: &ProcessShared, message: ToParent<'_>) -> Option<Reported> {
    let report = match message {
        ToParent::Tell(_) => return None,
        ToParent::Credit(credits) => {
            shared.tell_credits.grant(credits);
            return None;
        }
        ToParent::Progress { progress, samples } => {
            shared.update_view(|view| {
                view.timers.record_packed(samples);
                view.progress = progress;
            });
            Report::Progress {
                completed_runs: progress.completed_runs,
                lives_left: progress.lives_left,
            }
        }
        ToParent::Samples(samples) => {
            shared.update_view(|view| view.timers.record_packed(samples));
            return None;
        }
        ToParent::Checkpoint {
            state,
            completed_runs,
            samples,
        } => {
            shared.update_view(|view| {
                view.progress.completed_runs = completed_runs;
                view.timers.record_packed(samples);
            });
            return Some(Reported::Checkpoint {
                state: state.to_vec(),
                completed_runs,
            });
        }
        ToParent::HookStarted {
            hook,
            limit,
            run,
            started_nanos,
        } => Report::HookStarted {
            hook,
            limit,
            run,
            started: monotonic_instant(started_nanos),
        },
        ToParent::HookEnded => Report::HookEnded,
        ToParent::TimedOut { hook, limit, run } => Report::TimedOut { hook, limit, run },
        ToParent::Finishing => Report::Finishing,
        ToParent::HandlingError(failure) => Report::HandlingError(failure),
        ToParent::Finished {
            output,
            completed_runs,
        } => {
            shared.update_view(|view| view.progress.completed_runs = completed_runs);
            return Some(Reported::Finished(output.to_vec()));
        }
        ToParent::Failed(failure) => Report::Failed(failure),
        ToParent::UnknownType(key) => Report::SetupFailed(Error::UnknownType { key }),
        ToParent::SetupFailed(detail) => Report::SetupFailed(Error::Bootstrap { detail }),
    };
    Some(Reported::Report(report))
}

/// Moves the payloads read so far into the outbox, or drops them once nobody will read them.
/// Each spends one of the child's credits: a child that sent more than it was given broke the
/// protocol (the outbox's bound rests on it), and why is returned. A child told to discard
/// sends without credits.
pub(crate) fn queue_messages(
    shared: &ProcessShared,
    arrived: &mut Vec<Payload>,
) -> Result<(), String> {
    if arrived.is_empty() {
        return Ok(());
    }
    shared.update_view(|view| {
        if view.discarding {
            arrived.clear();
            return Ok(());
        }
        let spent = view.credit_return.received(arrived.len());
        match spent {
            Ok(()) => view.outbox.extend(arrived.drain(..)),
            Err(_) => arrived.clear(),
        }
        spent.map_err(|overspent| overspent.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn payloads(count: usize) -> Vec<Payload> {
        (0..count)
            .map(|_| Payload {
                bytes: vec![1],
                start: 0,
            })
            .collect()
    }

    #[test]
    fn a_child_that_tells_more_than_its_credits_broke_the_protocol() {
        let shared = ProcessShared::new("k", false, Config::default().outbox_capacity(2));
        assert_eq!(queue_messages(&shared, &mut payloads(2)), Ok(()));
        let overspent = queue_messages(&shared, &mut payloads(1)).unwrap_err();
        assert!(overspent.contains("credits"), "{overspent}");
        assert_eq!(
            shared.view().outbox.len(),
            2,
            "the overspent message is not queued"
        );
    }

    #[test]
    fn credits_handed_back_may_be_spent_and_a_discarding_parent_counts_nothing() {
        let shared = ProcessShared::new("k", false, Config::default().outbox_capacity(1));
        assert_eq!(queue_messages(&shared, &mut payloads(1)), Ok(()));
        let handed_back = shared.update_view(|view| {
            view.outbox.pop_front();
            view.credit_return.took_one()
        });
        assert_eq!(handed_back, Some(1));
        assert_eq!(queue_messages(&shared, &mut payloads(1)), Ok(()));
        shared.update_view(|view| view.discarding = true);
        assert_eq!(queue_messages(&shared, &mut payloads(50)), Ok(()));
    }
}
