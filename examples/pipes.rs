//! SCN-24: pipes between the parent and a child — a two-way exchange, a one-way stream
//! collected until its end marker, and two pipes (commands and data) to one worker.
//!
//! Run it with `cargo run --example pipes`.

use std::time::Duration;

use skprocess::error::Peer;
use skprocess::prelude::*;
use skprocess::{OneWay, Point};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    value: u64,
}

#[derive(Debug, Serialize, Deserialize)]
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

/// One-way: collects items until `None`.
#[derive(Serialize, Deserialize)]
struct Collector {
    items: Point<OneWay, Option<u32>>,
}

#[skprocess]
impl Collector {
    fn run(&mut self) {}

    fn result(&mut self) -> Result<Vec<u32>, Error> {
        let mut seen = Vec::new();
        while let Some(id) = self.items.recv()? {
            seen.push(id);
        }
        Ok(seen)
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Command {
    Process,
    Stop,
}

#[derive(Debug, Serialize, Deserialize)]
struct Status {
    status: String,
    result: u64,
}

/// Two pipes: a command pipe (two-way) and a data pipe (one-way); runs until told to stop.
#[derive(Serialize, Deserialize)]
struct DataWorker {
    commands: Point<Status, Command>,
    data: Point<OneWay, Vec<u64>>,
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

const WAIT: Duration = Duration::from_secs(30);

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    // Two-way.
    let (anchor, point) = Pipe::pair::<Job, Reply>()?;
    let solver = Solver { pipe: point }.start()?;
    anchor.send(Job { value: 21 })?;
    let reply = anchor.recv_timeout(WAIT)?.ok_or(Error::Gone {
        peer: Peer::PipeEnd,
    })?;
    println!("two-way: sent 21, received result {}", reply.result);
    solver.result_timeout(WAIT)?;
    assert_eq!(reply.result, 42);

    // One-way.
    let (anchor, point) = Pipe::one_way::<Option<u32>>()?;
    let collector = Collector { items: point }.start()?;
    for id in 0..3 {
        anchor.send(Some(id))?;
    }
    anchor.send(None)?;
    let seen = collector.result_timeout(WAIT)?;
    println!(
        "one-way: the child collected {} items: {seen:?}",
        seen.len()
    );
    assert_eq!(seen.len(), 3);

    // Two pipes.
    let (commands, command_point) = Pipe::pair::<Command, Status>()?;
    let (data, data_point) = Pipe::one_way::<Vec<u64>>()?;
    let worker = DataWorker {
        commands: command_point,
        data: data_point,
    }
    .start()?;
    commands.send(Command::Process)?;
    data.send(vec![1, 2, 3])?;
    let status = commands.recv_timeout(WAIT)?.ok_or(Error::Gone {
        peer: Peer::PipeEnd,
    })?;
    println!(
        "two pipes: {{status: {}, result: {}}}",
        status.status, status.result
    );
    commands.send(Command::Stop)?;
    worker.result_timeout(WAIT)?;
    println!("two pipes: the worker stopped on command");
    assert_eq!((status.status.as_str(), status.result), ("done", 6));
    Ok(())
}
