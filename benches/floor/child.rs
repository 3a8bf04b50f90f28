//! The re-executed side of the raw floors. Each role runs until the bench hangs up.

use std::io::{Read, Write};

use super::{Role, Stream, read_spinning};

/// Bytes of a streaming request: the number of frames (`u64`) and their size (`u32`), both
/// little-endian; the size counts the 4-byte length prefix.
pub const REQUEST: usize = 12;

/// Bytes of every frame the ping-pong exchanges.
pub const ECHO_FRAME: usize = 16;

/// Plays `role` on `stream`.
pub fn play(role: Role, stream: Stream) {
    match role {
        Role::Exit => {}
        Role::Hello => hello(stream),
        Role::Echo => echo(stream, |s, buf| s.read_exact(buf)),
        Role::EchoSpinning => echo(stream, read_spinning),
        Role::Stream => stream_frames(stream),
        Role::EchoBytes => echo_bytes(stream),
    }
}

fn hello(mut stream: Stream) {
    stream.write_all(&std::process::id().to_le_bytes()).unwrap();
    // Wait for the bench to hang up (or to kill this process).
    let _ = stream.read(&mut [0u8; 1]);
}

fn echo(mut stream: Stream, read: impl Fn(&mut Stream, &mut [u8]) -> std::io::Result<()>) {
    let mut frame = [0u8; ECHO_FRAME];
    while read(&mut stream, &mut frame).is_ok() {
        if stream.write_all(&frame).is_err() {
            break;
        }
    }
}

fn echo_bytes(mut stream: Stream) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = stream.read(&mut buffer) {
        if stream.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
}

fn stream_frames(mut stream: Stream) {
    let mut request = [0u8; REQUEST];
    let mut frame = Vec::new();
    while stream.read_exact(&mut request).is_ok() {
        let count = u64::from_le_bytes(request[..8].try_into().unwrap());
        let size = u32::from_le_bytes(request[8..].try_into().unwrap()) as usize;
        frame.clear();
        frame.extend_from_slice(&(size as u32 - 4).to_le_bytes());
        frame.resize(size, 7);
        for _ in 0..count {
            if stream.write_all(&frame).is_err() {
                return;
            }
        }
    }
}
