//! SCN-24 and E23: pipes between the parent and real child processes.

use std::time::Duration;

use skprocess::error::Peer;
use skprocess::prelude::*;
use skprocess::{Anchor, Point};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Job {
    value: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Reply {
    result: u64,
}

/// Two-way: answers one job with its double.
#[derive(Serialize, Deserialize)]
struct Solver {
    pipe: Point<Reply, Job>,
}

#[skprocess]
impl Solver {
    fn run(&mut self) -> Result<(), Error> {
        let job = self.pipe.recv()?;
        self.pipe.send(Reply {
            result: job.value * 2,
        })
    }
}

#[test]
fn scn24_two_way_doubles_21_into_42() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<Job, Reply>().unwrap();
    let handle = Solver { pipe: point }.start().unwrap();
    anchor.send(Job { value: 21 }).unwrap();
    assert_eq!(
        anchor.recv_timeout(BOUND).unwrap(),
        Some(Reply { result: 42 })
    );
    handle.result_timeout(BOUND).unwrap();
}

/// One-way: collects items until `None`, and returns them.
#[derive(Serialize, Deserialize)]
struct Collector {
    items: Point<skprocess::OneWay, Option<u32>>,
    seen: Vec<u32>,
}

#[skprocess]
impl Collector {
    fn run(&mut self) -> Result<(), Error> {
        while let Some(id) = self.items.recv()? {
            self.seen.push(id);
        }
        Ok(())
    }

    fn result(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.seen)
    }
}

#[test]
fn scn24_one_way_items_are_collected_until_the_end_marker() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::one_way::<Option<u32>>().unwrap();
    let handle = Collector {
        items: point,
        seen: Vec::new(),
    }
    .start()
    .unwrap();
    for id in 0..3 {
        anchor.send(Some(id)).unwrap();
    }
    anchor.send(None).unwrap();
    assert_eq!(handle.result_timeout(BOUND).unwrap(), vec![0, 1, 2]);
}

#[test]
fn e23_one_way_five_items_in_order() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::one_way::<Option<u32>>().unwrap();
    let handle = Collector {
        items: point,
        seen: Vec::new(),
    }
    .start()
    .unwrap();
    for id in 0..5 {
        anchor.send(Some(id)).unwrap();
    }
    anchor.send(None).unwrap();
    assert_eq!(handle.result_timeout(BOUND).unwrap(), vec![0, 1, 2, 3, 4]);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Command {
    Process,
    Stop,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Status {
    status: String,
    result: u64,
}

/// Two pipes: commands on one, data on the other; runs until told to stop.
#[derive(Serialize, Deserialize)]
struct DataWorker {
    commands: Point<Status, Command>,
    data: Point<skprocess::OneWay, Vec<u64>>,
}

#[skprocess(runs = None)]
impl DataWorker {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        match self.commands.recv()? {
            Command::Process => {
                let numbers = self.data.recv()?;
                self.commands.send(Status {
                    status: "done".into(),
                    result: numbers.iter().sum(),
                })
            }
            Command::Stop => {
                ctx.request_stop();
                Ok(())
            }
        }
    }
}

fn two_pipes(numbers: Vec<u64>) -> Status {
    let (commands, command_point) = Pipe::pair::<Command, Status>().unwrap();
    let (data, data_point) = Pipe::one_way::<Vec<u64>>().unwrap();
    let handle = DataWorker {
        commands: command_point,
        data: data_point,
    }
    .start()
    .unwrap();
    commands.send(Command::Process).unwrap();
    data.send(numbers).unwrap();
    let status = commands.recv_timeout(BOUND).unwrap().unwrap();
    commands.send(Command::Stop).unwrap();
    handle.result_timeout(BOUND).unwrap();
    status
}

#[test]
fn scn24_two_pipes_command_and_data_then_stop() {
    let _bound = bound::within(TEST_BOUND);
    let status = two_pipes(vec![1, 2, 3]);
    assert_eq!(
        status,
        Status {
            status: "done".into(),
            result: 6
        }
    );
}

#[test]
fn e23_two_pipes_sum_to_fifteen() {
    let _bound = bound::within(TEST_BOUND);
    assert_eq!(two_pipes(vec![1, 2, 3, 4, 5]).result, 15);
}

#[test]
fn scn24_sending_through_a_closed_point_is_closed() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<Job, Reply>().unwrap();
    point.close();
    assert!(matches!(
        point.send(Reply { result: 1 }),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
    drop(anchor);
}

/// An anchor used only in this process still works with its point in this process.
#[test]
fn both_ends_in_one_process_keep_fifo_order() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point): (Anchor<u32, u32>, Point<u32, u32>) = Pipe::pair().unwrap();
    let echo = std::thread::spawn(move || {
        for _ in 0..100 {
            let value = point
                .recv_timeout(BOUND)
                .unwrap()
                .expect("a value within the bound");
            point.send(value + 1).unwrap();
        }
    });
    for value in 0..100 {
        anchor.send(value).unwrap();
    }
    for value in 0..100 {
        assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(value + 1));
    }
    bound::join(echo, BOUND, "the echo thread");
}
