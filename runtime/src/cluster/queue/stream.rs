//! One queue's stream, as this process uses it: puts that wait for room, ends, and reads with
//! the delivery rule of the local queue. Every thread has a link of its own (a connection and
//! the message in its hand), so a reader blocked in `XREADGROUP` never holds up another
//! thread's put.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use redis::{Connection, RedisError, Value};

use crate::cluster::keys::{self, HOST_TTL, QUEUE_GROUP, QUEUE_TTL};
use crate::cluster::link::{self, COMMAND_TIMEOUT, Server, StreamEntry};
use crate::cluster::pool::claim;
use crate::cluster::queue::held::{self, Held, Touch};
use crate::cluster::queue::recipe::Recipe;
use crate::error::Error;

/// The longest one `XREADGROUP` blocks, so that messages left by stopped readers are seen
/// within about this much of becoming claimable.
const READ_BLOCK: Duration = Duration::from_millis(250);

/// Most pending messages looked at per claim check.
const CLAIM_BATCH: usize = 16;

/// Most messages (and bytes) one put script carries.
const PUT_BATCH: usize = 512;
const PUT_BATCH_BYTES: usize = 8 << 20;

/// The longest pause of a put waiting for room.
const LONGEST_ROOM_WAIT: Duration = Duration::from_millis(50);

/// Adds as many of the values `ARGV[5..]` as the queue has room for, in order, each as an
/// entry with the field `ARGV[4]`, and says how many: the group `ARGV[1]` is made first if
/// missing; `ARGV[2]` is the capacity (0: no limit — for ends), counted as entries neither
/// read nor acknowledged (`XLEN` minus the group's pending); `ARGV[3]` the stream's TTL.
const PUT: &str = r"
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local room = #ARGV - 4
local capacity = tonumber(ARGV[2])
if capacity > 0 then
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1])[1]
  room = math.min(room, capacity - (redis.call('XLEN', KEYS[1]) - pending))
end
local added = 0
while added < room do
  redis.call('XADD', KEYS[1], '*', ARGV[4], ARGV[5 + added])
  added = added + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return added
";

/// What one read found.
pub(crate) enum Read {
    /// One encoded message, now in this thread's hand.
    Msg(Vec<u8>),
    /// An end (acknowledged already): the reader stops.
    End,
    /// Nothing before the wait ended.
    Empty,
}

/// One queue of one server, shared by the handles of this process.
pub(crate) struct Stream {
    recipe: Recipe,
    server: Server,
    key: String,
    /// This process's consumer name in the group.
    consumer: String,
    /// How long a message may be held before another reader takes it over.
    stale: Duration,
    /// Whether this process touches what it holds (no lease).
    touched: bool,
    held: Arc<Held>,
}

thread_local! {
    /// This thread's links, by the queue's registry key.
    static LINKS: RefCell<HashMap<String, Link>> = RefCell::new(HashMap::new());
}

/// One thread's connection to one queue, and the message in its hand.
struct Link {
    connection: Option<Connection>,
    in_hand: Option<String>,
    /// When this link looks for messages stopped readers left, next.
    next_claim_check: Instant,
    /// For acknowledging the message in hand when the thread ends.
    stream: Weak<Stream>,
}

impl Stream {
    /// This process's `Stream` of the queue `recipe` names: the live one, or a new one.
    pub(crate) fn open(recipe: &Recipe) -> Result<Arc<Self>, Error> {
        let registry_key = recipe.registry_key();
        let mut streams = registry();
        if let Some(stream) = streams.get(&registry_key).and_then(Weak::upgrade) {
            return Ok(stream);
        }
        keys::check_name(&recipe.cluster).map_err(|problem| Error::Config { problem })?;
        keys::check_name(&recipe.queue).map_err(|problem| Error::Config { problem })?;
        let server = Server::parse(&recipe.url, &recipe.password_env, &recipe.ca_env)?;
        let stale = match recipe.lease_ms {
            Some(ms) => Duration::from_millis(ms.max(1)),
            None => HOST_TTL,
        };
        let stream = Arc::new(Self {
            key: keys::Keys::new(&recipe.cluster).queue(&recipe.queue),
            recipe: recipe.clone(),
            server,
            consumer: CONSUMER.clone(),
            stale,
            touched: recipe.lease_ms.is_none(),
            held: Arc::default(),
        });
        streams.retain(|_, weak| weak.strong_count() > 0);
        streams.insert(registry_key, Arc::downgrade(&stream));
        Ok(stream)
    }

    /// What a handle carries to another process.
    pub(crate) fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Makes the stream and its group if missing: checks that the server answers.
    pub(crate) fn ready(self: &Arc<Self>) -> Result<(), Error> {
        self.with_link(|_, connection| link::ensure_group(connection, &self.key, QUEUE_GROUP))
    }

    /// Appends `messages` in order, waiting for room until `deadline` (`None`: as long as it
    /// takes); how many went in (fewer when the queue stayed full).
    pub(crate) fn put(
        self: &Arc<Self>,
        messages: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        let capacity = self.recipe.capacity.max(1);
        let mut sent = 0;
        let mut pause = Duration::from_millis(1);
        while sent < messages.len() {
            let batch = put_batch(&messages[sent..]);
            let added = self.add(capacity, "m", batch)?;
            sent += added;
            if added == batch.len() {
                pause = Duration::from_millis(1);
                continue;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                break;
            }
            std::thread::sleep(left.map_or(pause, |left| left.min(pause)));
            pause = (pause * 2).min(LONGEST_ROOM_WAIT);
        }
        Ok(sent)
    }

    /// Appends one end, never waiting for room.
    pub(crate) fn end(self: &Arc<Self>) -> Result<(), Error> {
        self.add(0, "end", &[b"1".as_slice()]).map(drop)
    }

    fn add(self: &Arc<Self>, capacity: u64, field: &str, values: &[&[u8]]) -> Result<usize, Error> {
        self.with_link(|_, connection| {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(PUT)
                .arg(1)
                .arg(&self.key)
                .arg(QUEUE_GROUP)
                .arg(capacity)
                .arg(link::millis(QUEUE_TTL))
                .arg(field);
            for value in values {
                cmd.arg(*value);
            }
            let added: i64 = cmd.query(connection)?;
            Ok(usize::try_from(added).unwrap_or(0))
        })
    }

    /// The next message or end, waiting up to `wait` (`None`: until one comes); taking it
    /// acknowledges the one this thread held.
    pub(crate) fn next(self: &Arc<Self>, wait: Option<Duration>) -> Result<Read, Error> {
        let deadline = crate::deadline::after(wait);
        self.with_link(|link, connection| {
            loop {
                if let Some(read) = self.take_over(link, connection)? {
                    return Ok(read);
                }
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let block = left.map_or(READ_BLOCK, |left| left.min(READ_BLOCK));
                let mut pipe = redis::pipe();
                self.add_ack(&mut pipe, link);
                pipe.cmd("PEXPIRE")
                    .arg(&self.key)
                    .arg(link::millis(QUEUE_TTL))
                    .ignore();
                pipe.add_command(link::read_group(
                    &self.key,
                    QUEUE_GROUP,
                    &self.consumer,
                    1,
                    link::millis(block),
                ));
                let read = match pipe.query::<(Value,)>(connection) {
                    Err(e) if link::is_no_group(&e) => {
                        // The server restarted or the stream expired: what was in hand is
                        // gone with it.
                        self.drop_hand(link);
                        link::ensure_group(connection, &self.key, QUEUE_GROUP)?;
                        continue;
                    }
                    other => other?.0,
                };
                self.drop_hand(link);
                if let Some(entry) = link::read_group_entries(&read).into_iter().next() {
                    if let Some(read) = self.hand(link, connection, entry)? {
                        return Ok(read);
                    }
                    continue;
                }
                if left.is_some_and(|left| left <= block) {
                    return Ok(Read::Empty);
                }
            }
        })
    }

    /// Acknowledges the message this thread holds, if any.
    pub(crate) fn ack(self: &Arc<Self>) -> Result<(), Error> {
        if !self.holds_here() {
            return Ok(());
        }
        self.with_link(|link, connection| self.ack_now(link, connection))
    }

    /// Acknowledges the message this thread holds, quietly (an iteration stopped early):
    /// a failure leaves it to be taken over.
    pub(crate) fn settle(self: &Arc<Self>) {
        if self.holds_here() {
            let _ = self.ack();
        }
    }

    fn holds_here(&self) -> bool {
        LINKS
            .try_with(|links| {
                links.try_borrow().is_ok_and(|links| {
                    links
                        .get(&self.recipe.registry_key())
                        .is_some_and(|link| link.in_hand.is_some())
                })
            })
            .unwrap_or(false)
    }

    /// Claims one message a stopped reader left, when it is time to look.
    fn take_over(
        self: &Arc<Self>,
        link: &mut Link,
        connection: &mut Connection,
    ) -> Result<Option<Read>, RedisError> {
        let now = Instant::now();
        if now < link.next_claim_check {
            return Ok(None);
        }
        link.next_claim_check = now + (self.stale / 4).min(READ_BLOCK);
        self.ack_now(link, connection)?;
        let pending =
            link::pending_idle(connection, &self.key, QUEUE_GROUP, self.stale, CLAIM_BATCH);
        let pending = match pending {
            Err(e) if link::is_no_group(&e) => return Ok(None),
            other => other?,
        };
        let touched_here = |id: &str| self.touched && self.held.holds(id);
        for row in claim::to_claim(&pending, &touched_here, self.stale) {
            let claimed = link::claim(
                connection,
                &self.key,
                QUEUE_GROUP,
                &self.consumer,
                self.stale,
                &row.id,
            )?;
            if let Some(entry) = claimed.into_iter().next() {
                tracing::debug!(queue = %self.key, entry = %entry.id, from = %row.consumer, "took over a message a stopped reader held");
                if let Some(read) = self.hand(link, connection, entry)? {
                    return Ok(Some(read));
                }
            }
        }
        Ok(None)
    }

    /// Hands `entry` (just read or claimed) to this thread: a message goes in its hand, an
    /// end is acknowledged at once; an entry deleted meanwhile is acknowledged and skipped
    /// (`None`).
    fn hand(
        self: &Arc<Self>,
        link: &mut Link,
        connection: &mut Connection,
        entry: StreamEntry,
    ) -> Result<Option<Read>, RedisError> {
        let message = entry.field("m").map(<[u8]>::to_vec);
        let is_end = entry.field("end").is_some();
        self.held.hold(&entry.id);
        link.in_hand = Some(entry.id);
        if let Some(message) = message {
            if self.touched {
                held::keep_touched(
                    &self.held,
                    Touch {
                        server: self.server.clone(),
                        key: self.key.clone(),
                        consumer: self.consumer.clone(),
                    },
                );
            }
            return Ok(Some(Read::Msg(message)));
        }
        self.ack_now(link, connection)?;
        Ok(is_end.then_some(Read::End))
    }

    /// Adds the acknowledgement of the message in hand to `pipe` (`drop_hand` after it ran).
    fn add_ack(&self, pipe: &mut redis::Pipeline, link: &Link) {
        if let Some(id) = &link.in_hand {
            pipe.cmd("XACK")
                .arg(&self.key)
                .arg(QUEUE_GROUP)
                .arg(id)
                .ignore();
            pipe.cmd("XDEL").arg(&self.key).arg(id).ignore();
        }
    }

    fn ack_now(&self, link: &mut Link, connection: &mut Connection) -> Result<(), RedisError> {
        if link.in_hand.is_none() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.add_ack(&mut pipe, link);
        match pipe.query::<()>(connection) {
            Err(e) if !link::is_no_group(&e) => return Err(e),
            _ => {}
        }
        self.drop_hand(link);
        Ok(())
    }

    fn drop_hand(&self, link: &mut Link) {
        if let Some(id) = link.in_hand.take() {
            self.held.release(&id);
        }
    }

    /// Runs `call` on this thread's link, connecting first when it has no connection; a
    /// failed command drops the connection, so the next call connects again.
    fn with_link<R>(
        self: &Arc<Self>,
        call: impl FnOnce(&mut Link, &mut Connection) -> Result<R, RedisError>,
    ) -> Result<R, Error> {
        LINKS.with(|links| {
            let mut links = links.borrow_mut();
            let link = links
                .entry(self.recipe.registry_key())
                .or_insert_with(|| Link {
                    connection: None,
                    in_hand: None,
                    next_claim_check: Instant::now(),
                    stream: Arc::downgrade(self),
                });
            link.stream = Arc::downgrade(self);
            let mut connection = match link.connection.take() {
                Some(connection) => connection,
                None => self.server.connect(COMMAND_TIMEOUT)?,
            };
            match call(link, &mut connection) {
                Ok(value) => {
                    link.connection = Some(connection);
                    Ok(value)
                }
                Err(e) => Err(self.server.error(&e)),
            }
        })
    }
}

impl Drop for Link {
    /// The thread ended: the message in its hand is done.
    fn drop(&mut self) {
        let (Some(stream), Some(mut connection)) = (self.stream.upgrade(), self.connection.take())
        else {
            return;
        };
        let _ = stream.ack_now(self, &mut connection);
    }
}

impl Drop for Stream {
    /// The process's last handle is gone: what its threads hold is done.
    fn drop(&mut self) {
        let ids = self.held.take_all();
        if ids.is_empty() {
            return;
        }
        if let Ok(mut connection) = self.server.connect(COMMAND_TIMEOUT) {
            let mut pipe = redis::pipe();
            pipe.cmd("XACK")
                .arg(&self.key)
                .arg(QUEUE_GROUP)
                .arg(&ids)
                .ignore();
            pipe.cmd("XDEL").arg(&self.key).arg(&ids).ignore();
            let _ = pipe.query::<()>(&mut connection);
        }
    }
}

/// The first messages of `messages` that one put script carries.
fn put_batch<'a, 'b>(messages: &'a [&'b [u8]]) -> &'a [&'b [u8]] {
    let mut bytes = 0;
    let mut count = 0;
    for message in messages.iter().take(PUT_BATCH) {
        bytes += message.len();
        if count > 0 && bytes > PUT_BATCH_BYTES {
            break;
        }
        count += 1;
    }
    &messages[..count.max(1).min(messages.len())]
}

/// This process's consumer name: its pid and a random suffix.
static CONSUMER: LazyLock<String> = LazyLock::new(|| {
    let mut random = [0u8; 4];
    let suffix = match getrandom::fill(&mut random) {
        Ok(()) => keys::build_hex(&random),
        Err(_) => "0".into(),
    };
    format!("{}-{suffix}", std::process::id())
});

type Registry = BTreeMap<String, Weak<Stream>>;

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static STREAMS: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
    STREAMS.lock().unwrap_or_else(PoisonError::into_inner)
}
