//! The local file handoff: a caller on the daemon's Unix socket gets its
//! pulled files written straight into files it opened, instead of their
//! bytes coming over the gRPC stream.
//!
//! Beside the gRPC socket the daemon listens on a second one, the *files
//! socket* (the same path with `.files` appended, the same mode and
//! group). A Pull that asks for the handoff gets a [`Ticket`]: 16 random
//! bytes, sent to the caller in the stream's first message and bound to the
//! caller's uid. For each file the caller opens an empty file of its own
//! under a temporary name and sends, on a connection to the files socket,
//! one message: the ticket, the file's 0-based index (4 bytes, big-endian)
//! and the file's descriptor as `SCM_RIGHTS`. The daemon answers one byte
//! ([`Reply`]) and, if it took the descriptor, fills the file
//! ([`crate::service::deliver`]) and ends the file with FileDone once every
//! byte is written and verified. The caller renames the file into place.
//!
//! Only the daemon's own user gets tickets ([`Handoff::ticket_for`]): the
//! daemon then writes with no more privilege than its caller has, so the
//! file a caller passes can be nothing the caller could not write itself
//! (a root daemon writing a `/proc` file for another user could). Other
//! local users, like remote callers, get the stream. What the daemon takes
//! on trust, it checks: the connecting process's uid (`SO_PEERCRED`) must
//! be the ticket's; the descriptor must be a regular, empty file open for
//! writing (not `O_PATH`, not for appending). The daemon writes only
//! through that descriptor; no path is resolved on the caller's behalf. A
//! ticket takes one file at a time; a connection that sends nothing for
//! [`IDLE`] is closed.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rustix::fs::{FileType, OFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use satchel_oci::{Error, ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::callers::Caller;

/// How long a pull waits for the caller to pass the file it announced.
pub const FILE_WAIT: Duration = Duration::from_secs(30);

/// How long a files socket connection may send nothing before it is closed.
pub const IDLE: Duration = Duration::from_secs(30);

/// The one-byte answer to a file message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// The descriptor went to the pull, which checks it next (and fails
    /// the stream if it may not fill it).
    Taken = 0,
    /// No pull under way has this ticket.
    UnknownTicket = 1,
    /// The connecting user is not the one the ticket was given to.
    WrongUser = 2,
    /// The message was not a ticket, an index and one descriptor.
    Malformed = 3,
}

/// The length of a file message: the ticket and the index.
const MESSAGE: usize = 16 + 4;

/// A pull's registration: who may pass its files, and where they go.
struct Slot {
    uid: u32,
    files: mpsc::Sender<(u32, OwnedFd)>,
}

/// The pulls waiting for files, by ticket.
#[derive(Default)]
pub struct Handoff {
    pending: Mutex<HashMap<[u8; 16], Slot>>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.pending.lock().map(|p| p.len()).unwrap_or(0);
        write!(f, "Handoff({n} pulls waiting)")
    }
}

/// A pull's claim on the files socket; dropping it ends the claim.
pub struct Ticket {
    id: [u8; 16],
    files: mpsc::Receiver<(u32, OwnedFd)>,
    handoff: Weak<Handoff>,
}

impl Handoff {
    /// Accepts file messages on `listener` for as long as the handoff
    /// lives.
    pub fn serve(self: &Arc<Self>, listener: UnixListener) {
        let handoff = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let conn = match listener.accept().await {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        // Out of descriptors, or a connection aborted: the
                        // socket stays served.
                        tracing::warn!(error = %e, "files socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(handoff) = handoff.upgrade() else {
                    return;
                };
                tokio::spawn(async move {
                    if let Err(e) = handoff.connection(conn).await {
                        tracing::debug!(error = %e, "a files socket connection ended");
                    }
                });
            }
        });
    }

    /// A ticket for a pull by `caller` if the caller is the daemon's own
    /// user on the Unix socket; `None` (stream the bytes) otherwise.
    pub fn ticket_for(self: &Arc<Self>, caller: &Caller) -> Result<Option<Ticket>> {
        match caller {
            Caller::Owner => self.ticket(rustix::process::geteuid().as_raw()).map(Some),
            Caller::OtherUser(_) | Caller::Remote => Ok(None),
        }
    }

    /// A new ticket for a pull by the local user `uid`.
    pub fn ticket(self: &Arc<Self>, uid: u32) -> Result<Ticket> {
        let mut id = [0u8; 16];
        rustix::rand::getrandom(&mut id, rustix::rand::GetRandomFlags::empty())
            .map_err(|e| Error::new(ErrorKind::Internal, format!("no random bytes: {e}")))?;
        let (tx, rx) = mpsc::channel(1);
        let slot = Slot { uid, files: tx };
        self.pending.lock().expect("handoff").insert(id, slot);
        Ok(Ticket {
            id,
            files: rx,
            handoff: Arc::downgrade(self),
        })
    }

    /// Serves one connection: file messages one after another, each
    /// answered, until the caller hangs up.
    async fn connection(&self, mut conn: UnixStream) -> std::io::Result<()> {
        let uid = rustix::net::sockopt::socket_peercred(&conn)?.uid.as_raw();
        loop {
            let Ok(received) = tokio::time::timeout(IDLE, receive(&conn)).await else {
                return Ok(());
            };
            let Some((message, fd)) = received? else {
                return Ok(());
            };
            let reply = self.route(uid, &message, fd);
            conn.write_all(&[reply as u8]).await?;
            if reply == Reply::Malformed {
                return Ok(());
            }
        }
    }

    /// Hands a received descriptor to the pull its ticket names.
    fn route(&self, uid: u32, message: &[u8], fd: Option<OwnedFd>) -> Reply {
        let (MESSAGE, Some(fd)) = (message.len(), fd) else {
            return Reply::Malformed;
        };
        let id: [u8; 16] = message[..16].try_into().expect("sixteen bytes");
        let index = u32::from_be_bytes(message[16..].try_into().expect("four bytes"));
        let pending = self.pending.lock().expect("handoff");
        match pending.get(&id) {
            None => Reply::UnknownTicket,
            Some(slot) if slot.uid != uid => Reply::WrongUser,
            // One file at a time: a second before the pull took the first
            // is refused.
            Some(slot) => match slot.files.try_send((index, fd)) {
                Ok(()) => Reply::Taken,
                Err(_) => Reply::UnknownTicket,
            },
        }
    }
}

/// Reads one file message and the descriptors that came with it (only the
/// first is kept); `None` when the caller hung up.
async fn receive(conn: &UnixStream) -> std::io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = [0u8; MESSAGE + 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let (n, fd) = conn
        .async_io(Interest::READABLE, || {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                conn,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            let mut fds = control.drain().filter_map(|m| match m {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds),
                _ => None,
            });
            let fd = fds.next().and_then(|mut fds| fds.next());
            Ok((got.bytes, fd))
        })
        .await?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some((buf[..n].to_vec(), fd)))
}

impl Ticket {
    /// The ticket's bytes, for the caller.
    pub fn id(&self) -> &[u8; 16] {
        &self.id
    }

    /// Waits (at most `wait`) for the file of the `index`th file of the
    /// pull, and checks it is one the daemon may fill.
    pub async fn file(&mut self, index: u32, wait: Duration) -> Result<std::fs::File> {
        let (got, fd) = match tokio::time::timeout(wait, self.files.recv()).await {
            Ok(Some(file)) => file,
            Ok(None) => return Err(refused("the local handoff has ended".into())),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "the caller passed no file for the local handoff within {} s",
                        wait.as_secs()
                    ),
                ))
            }
        };
        if got != index {
            return Err(refused(format!(
                "the caller passed a file for file {got} while file {index} was due"
            )));
        }
        // fstat and fcntl on a hung mount must not hold up a runtime worker.
        tokio::task::spawn_blocking(move || writable_empty_file(fd))
            .await
            .map_err(|e| refused(format!("the check failed: {e}")))?
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(handoff) = self.handoff.upgrade() {
            handoff.pending.lock().expect("handoff").remove(&self.id);
        }
    }
}

/// The descriptor as a file, if it is a regular, empty file open for
/// writing (and not for appending).
fn writable_empty_file(fd: OwnedFd) -> Result<std::fs::File> {
    let stat =
        rustix::fs::fstat(fd.as_fd()).map_err(|e| refused(format!("cannot stat it: {e}")))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(refused("it is not a regular file".into()));
    }
    if stat.st_size != 0 {
        return Err(refused("it is not empty".into()));
    }
    let flags = rustix::fs::fcntl_getfl(fd.as_fd())
        .map_err(|e| refused(format!("cannot read its flags: {e}")))?;
    let mode = flags & OFlags::RWMODE;
    if mode == OFlags::RDONLY || flags.intersects(OFlags::APPEND | OFlags::PATH) {
        return Err(refused("it is not open for writing at any offset".into()));
    }
    Ok(std::fs::File::from(fd))
}

fn refused(why: String) -> Error {
    Error::new(
        ErrorKind::FailedPrecondition,
        format!("the file passed for the local handoff is refused: {why}"),
    )
}

/// Sends one file message on `conn` (the client's half, for tests and
/// tools in this crate): the ticket, the index and `file`'s descriptor.
pub async fn send_file(
    conn: &mut UnixStream,
    ticket: &[u8],
    index: u32,
    file: Option<std::os::fd::BorrowedFd<'_>>,
) -> std::io::Result<u8> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut message = ticket.to_vec();
    message.extend_from_slice(&index.to_be_bytes());
    let fds: Vec<_> = file.into_iter().collect();
    let conn_ref: &UnixStream = conn;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    conn_ref
        .async_io(Interest::WRITABLE, || {
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !fds.is_empty() {
                control.push(SendAncillaryMessage::ScmRights(&fds));
            }
            rustix::net::sendmsg(
                conn_ref,
                &[std::io::IoSlice::new(&message)],
                &mut control,
                SendFlags::empty(),
            )
            .map_err(std::io::Error::from)
        })
        .await?;
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).await?;
    Ok(reply[0])
}

#[cfg(test)]
mod tests;
