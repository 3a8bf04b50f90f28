//! Turns with real threads: every event served once, in each sender's order, with no thread
//! of the state's own; a turn that wants the thread wakes it; what is left while the thread
//! holds the state is served when it lets go.

use std::sync::mpsc::RecvTimeoutError;
use std::thread;

use super::*;

/// Counts events per sender, checking each sender's come in order.
struct Tally {
    events: TurnReceiver<(usize, u64)>,
    next: Vec<u64>,
    served: u64,
    /// Events served with this value set want the thread.
    wants: bool,
}

impl Served for Tally {
    fn serve_waiting(&mut self) {
        while let Ok((sender, n)) = self.events.try_recv() {
            assert_eq!(
                self.next[sender], n,
                "sender {sender}'s events out of order"
            );
            self.next[sender] += 1;
            self.served += 1;
        }
        // Work after the last event (as carrying out actions is), so that senders come
        // while the state is held and nothing is left to receive.
        for _ in 0..2_000 {
            std::hint::spin_loop();
        }
    }

    fn wants_thread(&self) -> bool {
        self.wants
    }
}

/// What a test sends: the sender's number and the event's.
type TallySender = TurnSender<(usize, u64), Tally>;

fn tally(senders: usize) -> (TallySender, Arc<Turns<Tally>>) {
    let (sender, events, turns) = channel();
    turns.install(Tally {
        events,
        next: vec![0; senders],
        served: 0,
        wants: false,
    });
    (sender, turns)
}

#[test]
fn senders_serve_every_event_once_in_order_without_a_thread() {
    const SENDERS: usize = 4;
    const EACH: u64 = 50;
    // Many short rounds: an event left behind is most likely at a round's end, when no
    // sender comes after it.
    for round in 0..300 {
        let (sender, turns) = tally(SENDERS);
        let threads: Vec<_> = (0..SENDERS)
            .map(|id| {
                let sender = sender.clone();
                thread::spawn(move || {
                    for n in 0..EACH {
                        assert!(sender.send((id, n)).is_ok());
                    }
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().is_ok());
        }
        // Every sender returned: whatever one left to a holder, the holder served.
        let guard = turns.lock();
        let Some(state) = guard.as_ref() else {
            panic!("the state left");
        };
        assert_eq!(state.served, SENDERS as u64 * EACH, "round {round}");
        assert_eq!(state.next, vec![EACH; SENDERS]);
        assert_eq!(turns.pending.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn a_turn_that_wants_the_thread_wakes_it_and_what_waited_is_served_on_letting_go() {
    let (sender, turns) = tally(1);
    let (idled, idle_ended) = mpsc::channel();
    // The thread holds the state while an event comes: the sender leaves it.
    let guard = turns.lock();
    let sent = {
        let sender = sender.clone();
        thread::spawn(move || sender.send((0, 0)).is_ok())
    };
    assert_eq!(sent.join().ok(), Some(true));
    assert_eq!(guard.as_ref().map(|state| state.served), Some(0));
    let thread_turns = Arc::clone(&turns);
    let thread = thread::spawn(move || {
        // Letting go serves what waited; then it idles until a turn wants it.
        let guard = thread_turns.lock();
        thread_turns.idle(guard, None);
        let _ = idled.send(());
    });
    drop(guard);
    // Served without the thread being woken…
    let served = (0..1000).find_map(|_| {
        let served = turns.lock().as_ref().map(|state| state.served);
        (served == Some(1)).then_some(()).or_else(|| {
            thread::sleep(Duration::from_millis(5));
            None
        })
    });
    assert!(served.is_some(), "the waiting event was not served");
    assert_eq!(
        idle_ended.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout),
        "the thread looked with nothing to do"
    );
    // …and woken by a turn that wants it.
    if let Some(state) = turns.lock().as_mut() {
        state.wants = true;
    }
    assert!(sender.send((0, 1)).is_ok());
    assert_eq!(idle_ended.recv_timeout(Duration::from_secs(10)), Ok(()));
    assert!(thread.join().is_ok());
    assert!(turns.end().is_some_and(|state| state.served == 2));
    // Ended: a send is no longer served, and does not hang.
    assert!(sender.send((0, 2)).is_err() || turns.lock().is_none());
}
