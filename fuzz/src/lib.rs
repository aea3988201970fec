//! Helpers shared by the fuzz targets: the input split into parameters and
//! payload, arbitrary read boundaries, and an in-memory peer for the async
//! decoders, polled without a runtime.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads the leading parameter bytes of a fuzz input; missing bytes read
/// as 0, so every input is usable.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Everything not taken as a parameter.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Read sizes drawn from a seed byte, as a socket would deliver a stream:
/// seed 0 delivers everything at once, otherwise pieces of 1 to `max` bytes.
pub struct Splits {
    state: u32,
    max: usize,
}

impl Splits {
    pub fn new(seed: u8) -> Self {
        // The low bits choose the largest piece (1 byte up to 4 KiB), the
        // rest seeds a xorshift generator.
        let max = match seed & 3 {
            0 => usize::MAX,
            1 => 1,
            2 => 16,
            _ => 4096,
        };
        Splits {
            state: u32::from(seed).wrapping_mul(2_654_435_761) | 1,
            max,
        }
    }

    pub fn next_len(&mut self, left: usize) -> usize {
        if self.max == usize::MAX {
            return left;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let len = 1 + (self.state as usize) % self.max;
        len.min(left).max(1)
    }

    /// `data` cut into consecutive pieces.
    pub fn pieces(mut self, mut data: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (piece, rest) = data.split_at(self.next_len(data.len()));
            out.push(piece);
            data = rest;
        }
        out
    }
}

/// A peer that sends `data` in pieces and swallows everything written to
/// it; never pending, so [`ready`] can drive futures over it.
pub struct MemoryPeer<'a> {
    data: &'a [u8],
    splits: Splits,
    /// Bytes handed out so far.
    pub consumed: usize,
}

impl<'a> MemoryPeer<'a> {
    pub fn new(data: &'a [u8], splits: Splits) -> Self {
        MemoryPeer {
            data,
            splits,
            consumed: 0,
        }
    }
}

impl AsyncRead for MemoryPeer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let left = self.data.len() - self.consumed;
        if left == 0 || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = self.splits.next_len(left).min(buf.remaining());
        let start = self.consumed;
        buf.put_slice(&self.data[start..start + n]);
        self.consumed += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemoryPeer<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a future that never waits (all its I/O is a [`MemoryPeer`]).
pub fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a decoder waited on an in-memory peer"),
    }
}
