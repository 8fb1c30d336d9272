//! The caller's half of the local file handoff (`PullRequest.local_files`
//! in the proto): for each file of a pull, the file this client created
//! under a temporary name goes to the daemon as a descriptor over the
//! daemon's files socket, with the pull's ticket and the file's index, and
//! the daemon fills it. One connection serves a whole pull.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::UnixStream;
use tonic::Code;

use crate::Error;

/// A pull's handoff: where to pass files, with which ticket.
pub(crate) struct Handoff {
    socket: PathBuf,
    ticket: Vec<u8>,
    conn: Option<UnixStream>,
    /// The index of the next file.
    next: u32,
}

impl Handoff {
    pub(crate) fn new(socket: PathBuf, ticket: Vec<u8>) -> Handoff {
        Handoff {
            socket,
            ticket,
            conn: None,
            next: 0,
        }
    }

    /// Passes `file`, the next file of the pull, to the daemon to fill.
    pub(crate) async fn pass(&mut self, file: &std::fs::File) -> Result<(), Error> {
        let index = self.next;
        self.next += 1;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = UnixStream::connect(&self.socket).await.map_err(|e| {
                    Error::io(
                        format!("cannot reach the files socket {}", self.socket.display()),
                        e,
                    )
                })?;
                self.conn.insert(conn)
            }
        };
        let mut message = self.ticket.clone();
        message.extend_from_slice(&index.to_be_bytes());
        let what = || format!("cannot pass a file on {}", self.socket.display());
        send_with_fd(conn, &message, file)
            .await
            .map_err(|e| Error::io(what(), e))?;
        let mut reply = [0u8; 1];
        conn.read_exact(&mut reply)
            .await
            .map_err(|e| Error::io(what(), e))?;
        match reply[0] {
            0 => Ok(()),
            n => Err(Error::local(
                Code::FailedPrecondition,
                format!("the daemon refused the file passed for the local handoff (reply {n})"),
            )),
        }
    }
}

/// Sends `message` with `file`'s descriptor attached (`SCM_RIGHTS`).
async fn send_with_fd(
    conn: &UnixStream,
    message: &[u8],
    file: &std::fs::File,
) -> std::io::Result<()> {
    let fds = [file.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let sent = conn
        .async_io(Interest::WRITABLE, || {
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            rustix::net::sendmsg(
                conn,
                &[IoSlice::new(message)],
                &mut control,
                SendFlags::empty(),
            )
            .map_err(std::io::Error::from)
        })
        .await?;
    if sent != message.len() {
        return Err(std::io::Error::other("the file message was cut short"));
    }
    Ok(())
}
