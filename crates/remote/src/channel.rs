//! One SSH channel as a byte stream (`AsyncRead + AsyncWrite`) that never ends quietly
//! when the connection under it is lost: reads and writes then fail with
//! [`RemoteError::ConnectionLost`], where a plain channel stream would report an ordinary
//! end of data (which, for an exec's or a follow's output, looks like success).

use crate::RemoteError;
use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How many received messages wait for the reader before the channel stops reading (the
/// SSH window then holds the sender back).
const QUEUE: usize = 32;

/// A channel's data both ways; dropping it closes the channel.
pub struct ChannelIo {
    incoming: mpsc::Receiver<io::Result<Bytes>>,
    pending: Bytes,
    writer: Pin<Box<dyn AsyncWrite + Send>>,
    write_half: Option<ChannelWriteHalf<Msg>>,
    lost_token: CancellationToken,
    lost: Pin<Box<WaitForCancellationFutureOwned>>,
    pump: tokio::task::JoinHandle<()>,
    address: String,
}

impl ChannelIo {
    /// Wraps an open channel; `lost` is cancelled when the connection carrying it ends.
    pub(crate) fn new(
        channel: russh::Channel<Msg>,
        lost: CancellationToken,
        address: String,
    ) -> Self {
        let (read_half, write_half) = channel.split();
        let (tx, incoming) = mpsc::channel(QUEUE);
        let pump = tokio::spawn(pump(read_half, tx, lost.clone(), address.clone()));
        Self {
            incoming,
            pending: Bytes::new(),
            writer: Box::pin(write_half.make_writer()),
            write_half: Some(write_half),
            lost: Box::pin(lost.clone().cancelled_owned()),
            lost_token: lost,
            pump,
            address,
        }
    }

    fn lost_error(&self) -> io::Error {
        RemoteError::ConnectionLost {
            address: self.address.clone(),
        }
        .into_io()
    }

    /// Fails if the connection is gone; otherwise registers to be woken when it goes.
    fn check_lost(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.lost_token.is_cancelled() || self.lost.as_mut().poll(cx).is_ready() {
            return Err(self.lost_error());
        }
        Ok(())
    }
}

/// Moves what the channel receives into the queue; ends the queue on the remote's end of
/// data, or with an error when the connection is lost first.
async fn pump(
    mut read: ChannelReadHalf,
    tx: mpsc::Sender<io::Result<Bytes>>,
    lost: CancellationToken,
    address: String,
) {
    loop {
        let message = tokio::select! {
            message = read.wait() => message,
            () = lost.cancelled() => None,
        };
        match message {
            Some(ChannelMsg::Data { data }) => {
                if tx.send(Ok(Bytes::copy_from_slice(&data))).await.is_err() {
                    return;
                }
            }
            Some(ChannelMsg::Eof | ChannelMsg::Close) => return,
            Some(_) => {}
            None => {
                lost.cancel();
                let _ = tx
                    .send(Err(RemoteError::ConnectionLost { address }.into_io()))
                    .await;
                return;
            }
        }
    }
}

impl AsyncRead for ChannelIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            match this.incoming.poll_recv(cx) {
                Poll::Ready(Some(Ok(bytes))) => this.pending = bytes,
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(err)),
                // The remote ended its data before any loss.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    this.check_lost(cx)?;
                    return Poll::Pending;
                }
            }
        }
        let n = buf.remaining().min(this.pending.len());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ChannelIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_lost(cx)?;
        let written = ready!(self.writer.as_mut().poll_write(cx, data));
        Poll::Ready(written.map_err(|err| {
            if self.lost_token.is_cancelled() {
                self.lost_error()
            } else {
                err
            }
        }))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_lost(cx)?;
        self.writer.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_lost(cx)?;
        self.writer.as_mut().poll_shutdown(cx)
    }
}

impl Drop for ChannelIo {
    fn drop(&mut self) {
        self.pump.abort();
        if let Some(write_half) = self.write_half.take() {
            if self.lost_token.is_cancelled() {
                return;
            }
            // Best effort: the channel closes even if nobody awaits it.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = write_half.close().await;
                });
            }
        }
    }
}
