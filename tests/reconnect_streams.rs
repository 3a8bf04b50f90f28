//! Live TCP and Unix streams and files across real child processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use skprocess::prelude::*;
use skprocess::reconnect::FileRecipe;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Answers one line per connection with `pong <connection number>`.
fn serve<S: Read + Write + Send + 'static>(accept: impl Fn() -> Option<S> + Send + 'static) {
    std::thread::spawn(move || {
        let mut number = 0;
        while let Some(mut stream) = accept() {
            let mut line = String::new();
            if BufReader::new(&mut stream).read_line(&mut line).is_ok() {
                let _ = writeln!(stream, "pong {number}");
            }
            number += 1;
        }
    });
}

fn exchange(stream: &mut (impl Read + Write)) -> std::io::Result<String> {
    stream.write_all(b"ping\n")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// One exchange per run on a TCP connection; the first life is SIGKILLed in the second run.
#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct TcpClient {
    server: Live<TcpStream>,
    replies: Vec<String>,
}

#[skprocess(runs = 2, lives = 2)]
impl TcpClient {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Box<dyn std::error::Error>> {
        if ctx.current_run() == 1 && ctx.lives_left() == 2 {
            pid::kill(std::process::id());
        }
        let reply = exchange(self.server.get_mut()?)?;
        self.replies.push(reply);
        Ok(())
    }

    fn result(&mut self) -> Vec<String> {
        std::mem::take(&mut self.replies)
    }
}

#[test]
fn a_live_tcp_stream_connects_again_in_each_child() {
    let _bound = bound::within(TEST_BOUND);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    serve(move || listener.accept().ok().map(|(stream, _)| stream));
    let client = TcpClient {
        server: Live::deferred(address),
        replies: Vec::new(),
    };
    let replies = client.start().unwrap().result_timeout(BOUND).unwrap();
    // The first child's connection answered run 0; the replacement's connection run 1.
    assert_eq!(replies, vec!["pong 0", "pong 1"]);
}

/// `Live<UnixStream>`: Unix by nature.
#[cfg(unix)]
mod unix_stream {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[autoreconnect]
    #[derive(Serialize, Deserialize)]
    struct UnixClient {
        server: Live<UnixStream>,
    }

    #[skprocess]
    impl UnixClient {
        fn run(&mut self) {}

        fn result(&mut self) -> Result<String, Box<dyn std::error::Error>> {
            Ok(exchange(self.server.get_mut()?)?)
        }
    }

    #[test]
    fn a_live_unix_stream_connects_again_in_the_child() {
        let _bound = bound::within(TEST_BOUND);
        let dir = scratch("unix-live");
        let path = dir.join("server.sock");
        let listener = UnixListener::bind(&path).unwrap();
        serve(move || listener.accept().ok().map(|(stream, _)| stream));
        // Opened here too: the parent's connection is number 0, the child's number 1.
        let mut server = Live::<UnixStream>::open(path.clone()).unwrap();
        assert_eq!(exchange(server.get_mut().unwrap()).unwrap(), "pong 0");
        let reply = UnixClient { server }
            .start()
            .unwrap()
            .result_timeout(BOUND)
            .unwrap();
        assert_eq!(reply, "pong 1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct FileReader {
    file: Live<std::fs::File>,
}

#[skprocess]
impl FileReader {
    fn run(&mut self) {}

    fn result(&mut self) -> Result<String, Box<dyn std::error::Error>> {
        let mut rest = String::new();
        self.file.get_mut()?.read_to_string(&mut rest)?;
        Ok(rest)
    }
}

#[test]
fn a_live_file_reopens_at_the_offset_it_had_when_it_moved() {
    let _bound = bound::within(TEST_BOUND);
    let dir = scratch("file-live");
    let path = dir.join("greeting.txt");
    std::fs::write(&path, "hello world").unwrap();
    let mut file = Live::<std::fs::File>::open(FileRecipe::read(&path)).unwrap();
    let mut head = [0u8; 6];
    file.get_mut().unwrap().read_exact(&mut head).unwrap();
    assert_eq!(&head, b"hello ");
    let rest = FileReader { file }
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    assert_eq!(rest, "world");
    std::fs::remove_dir_all(&dir).unwrap();
}
