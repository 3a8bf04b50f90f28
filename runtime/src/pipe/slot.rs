//! Who the anchor's peer is: the state an anchor shares with its accept thread, and the rules
//! for a point that connects. Plain values in, decisions out, so the rules are tested without
//! sockets.
//!
//! - No point has connected yet, or the last one's process ended: a point that connects becomes
//!   the peer (a process restarted after a crash connects its point again).
//! - A peer is connected and its process is alive: another connection with the same point is
//!   refused, so two processes never interleave on one pipe.
//! - The anchor was closed: every connection is refused.

use std::sync::Arc;

use crate::protocol::pipe::Refusal;

/// The anchor's view of its peer. `L` is the connected end (a `Link`, or a stand-in in tests).
#[derive(Debug)]
pub(crate) enum Peer<L> {
    /// No point has connected yet.
    Waiting,
    /// This end is connected.
    Connected(Arc<L>),
    /// The connected point's process ended (or it closed its end); a restarted process may
    /// connect again.
    Lost,
    /// The anchor was closed; nothing connects any more.
    Closed,
}

/// What the accept thread does with a point that proved the pipe's token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Accept,
    Refuse(Refusal),
}

/// A point that connected: what it claims and whether the current peer is still there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    pub(crate) nonce_matches: bool,
    pub(crate) types_match: bool,
    /// Whether the connected peer (if any) has hung up, checked when the point arrived.
    pub(crate) current_peer_hung_up: bool,
}

impl<L> Peer<L> {
    /// Decides whether a connecting point becomes the peer.
    pub(crate) fn admit(&self, arrival: Arrival, current_pid: impl Fn(&L) -> u32) -> Admission {
        if !arrival.nonce_matches {
            return Admission::Refuse(Refusal::WrongPipe);
        }
        if !arrival.types_match {
            return Admission::Refuse(Refusal::TypeMismatch);
        }
        match self {
            Peer::Closed => Admission::Refuse(Refusal::Closed),
            Peer::Connected(link) if !arrival.current_peer_hung_up => {
                Admission::Refuse(Refusal::InUse {
                    pid: current_pid(link),
                })
            }
            Peer::Connected(_) | Peer::Waiting | Peer::Lost => Admission::Accept,
        }
    }

    /// Marks `link` as lost, if it is still the peer (a newer connection is left alone).
    pub(crate) fn lose(&mut self, link: &Arc<L>) {
        if matches!(self, Peer::Connected(current) if Arc::ptr_eq(current, link)) {
            *self = Peer::Lost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(nonce: bool, types: bool, hung_up: bool) -> Arrival {
        Arrival {
            nonce_matches: nonce,
            types_match: types,
            current_peer_hung_up: hung_up,
        }
    }

    const PID: fn(&u32) -> u32 = |pid| *pid;

    #[test]
    fn a_first_point_is_accepted_and_a_second_live_one_refused() {
        let waiting: Peer<u32> = Peer::Waiting;
        assert_eq!(
            waiting.admit(arrival(true, true, false), PID),
            Admission::Accept
        );
        let connected = Peer::Connected(Arc::new(7));
        assert_eq!(
            connected.admit(arrival(true, true, false), PID),
            Admission::Refuse(Refusal::InUse { pid: 7 })
        );
    }

    #[test]
    fn a_restarted_process_replaces_a_peer_that_hung_up_or_was_lost() {
        let connected = Peer::Connected(Arc::new(7));
        assert_eq!(
            connected.admit(arrival(true, true, true), PID),
            Admission::Accept
        );
        let lost: Peer<u32> = Peer::Lost;
        assert_eq!(
            lost.admit(arrival(true, true, false), PID),
            Admission::Accept
        );
    }

    #[test]
    fn wrong_pipe_wrong_types_and_a_closed_anchor_are_refused() {
        let waiting: Peer<u32> = Peer::Waiting;
        assert_eq!(
            waiting.admit(arrival(false, true, false), PID),
            Admission::Refuse(Refusal::WrongPipe)
        );
        assert_eq!(
            waiting.admit(arrival(true, false, false), PID),
            Admission::Refuse(Refusal::TypeMismatch)
        );
        let closed: Peer<u32> = Peer::Closed;
        assert_eq!(
            closed.admit(arrival(true, true, false), PID),
            Admission::Refuse(Refusal::Closed)
        );
    }

    #[test]
    fn losing_an_old_link_leaves_a_newer_one_alone() {
        let old = Arc::new(1);
        let new = Arc::new(2);
        let mut peer = Peer::Connected(Arc::clone(&new));
        peer.lose(&old);
        assert!(matches!(peer, Peer::Connected(_)));
        peer.lose(&new);
        assert!(matches!(peer, Peer::Lost));
    }
}
