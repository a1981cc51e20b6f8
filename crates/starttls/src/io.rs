//! Async driver for the server role (feature `tokio`): plays the server side of a STARTTLS dialogue
//! on a stream until the client asks for TLS, under one overall deadline.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use crate::{Protocol, ServerDialogue, ServerParams, ServerStep};

/// Why a client did not get to TLS.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the client did not ask for TLS in time")]
    Timeout,
    #[error("the client closed the connection during the {0} dialogue")]
    Closed(&'static str),
    #[error("{0}")]
    Refused(String),
}

/// Runs the server side of `protocol`'s STARTTLS dialogue on `stream`. Returns the client bytes that
/// followed its STARTTLS request (the start of its TLS stream if it did not wait).
pub async fn accept_starttls<S>(stream: &mut S, protocol: Protocol, params: ServerParams, deadline: Instant) -> Result<Vec<u8>, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut dialogue = ServerDialogue::new(protocol, params);
    let greeting = dialogue.start();
    if !greeting.is_empty() {
        write(stream, &greeting, deadline).await?;
    }
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(AcceptError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(AcceptError::Closed(protocol.name())),
            Ok(Ok(n)) => n,
        };
        match dialogue.feed(&buf[..n]) {
            ServerStep::NeedMore => {}
            ServerStep::Send(bytes) => write(stream, &bytes, deadline).await?,
            ServerStep::StartTls { send_first, leftover } => {
                if !send_first.is_empty() {
                    write(stream, &send_first, deadline).await?;
                }
                return Ok(leftover);
            }
            ServerStep::Close { send_last, reason } => {
                if !send_last.is_empty() {
                    let _ = write(stream, &send_last, deadline).await;
                }
                return Err(AcceptError::Refused(reason));
            }
        }
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8], deadline: Instant) -> Result<(), AcceptError> {
    match timeout_at(deadline, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(AcceptError::Closed("STARTTLS")),
        Err(_) => Err(AcceptError::Timeout),
    }
}
