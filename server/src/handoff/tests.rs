//! The files socket on a real Unix socket in a temp dir, with this test
//! process as both the daemon and the caller.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use super::*;

/// A handoff serving a socket in a fresh temp dir, and a caller connected
/// to it.
async fn served() -> (Arc<Handoff>, UnixStream, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock.files");
    let handoff = Arc::new(Handoff::default());
    handoff.serve(UnixListener::bind(&path).unwrap());
    let conn = UnixStream::connect(&path).await.unwrap();
    (handoff, conn, dir)
}

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_file_passed_with_its_ticket_reaches_the_pull_and_is_written_through() {
    let (handoff, mut conn, dir) = served().await;
    let mut ticket = handoff.ticket(me()).unwrap();
    let path = dir.path().join("out");
    let file = std::fs::File::create_new(&path).unwrap();
    let reply = send_file(&mut conn, ticket.id(), 0, Some(file.as_fd()))
        .await
        .unwrap();
    assert_eq!(reply, Reply::Taken as u8);
    let mut got = ticket.file(0, WAIT).await.unwrap();
    got.write_all(b"filled").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"filled");
}

#[tokio::test]
async fn an_unknown_or_ended_ticket_is_refused() {
    let (handoff, mut conn, dir) = served().await;
    let file = std::fs::File::create_new(dir.path().join("f")).unwrap();
    let reply = send_file(&mut conn, &[7u8; 16], 0, Some(file.as_fd()))
        .await
        .unwrap();
    assert_eq!(reply, Reply::UnknownTicket as u8);
    let ticket = handoff.ticket(me()).unwrap();
    let id = *ticket.id();
    drop(ticket);
    let reply = send_file(&mut conn, &id, 0, Some(file.as_fd()))
        .await
        .unwrap();
    assert_eq!(reply, Reply::UnknownTicket as u8);
}

#[tokio::test]
async fn another_users_ticket_is_refused_and_the_pull_gets_nothing() {
    let (handoff, mut conn, dir) = served().await;
    let mut ticket = handoff.ticket(me().wrapping_add(1)).unwrap();
    let file = std::fs::File::create_new(dir.path().join("f")).unwrap();
    let reply = send_file(&mut conn, ticket.id(), 0, Some(file.as_fd()))
        .await
        .unwrap();
    assert_eq!(reply, Reply::WrongUser as u8);
    let waited = ticket
        .file(0, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(waited.kind(), ErrorKind::FailedPrecondition, "{waited}");
}

#[tokio::test]
async fn a_message_without_a_descriptor_or_of_the_wrong_length_is_malformed() {
    let (handoff, mut conn, dir) = served().await;
    let ticket = handoff.ticket(me()).unwrap();
    let reply = send_file(&mut conn, ticket.id(), 0, None).await.unwrap();
    assert_eq!(reply, Reply::Malformed as u8);
    // The daemon hangs up after a malformed message; a new connection.
    let mut conn = UnixStream::connect(dir.path().join("s.sock.files"))
        .await
        .unwrap();
    let file = std::fs::File::create_new(dir.path().join("f")).unwrap();
    let reply = send_file(&mut conn, &ticket.id()[..15], 0, Some(file.as_fd()))
        .await
        .unwrap();
    assert_eq!(reply, Reply::Malformed as u8);
}

#[tokio::test]
async fn a_file_for_another_index_than_the_one_due_is_refused() {
    let (handoff, mut conn, dir) = served().await;
    let mut ticket = handoff.ticket(me()).unwrap();
    let file = std::fs::File::create_new(dir.path().join("f")).unwrap();
    send_file(&mut conn, ticket.id(), 3, Some(file.as_fd()))
        .await
        .unwrap();
    let err = ticket.file(0, WAIT).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

/// Each descriptor the daemon must not fill, passed with a good ticket.
#[tokio::test]
async fn descriptors_the_daemon_may_not_fill_are_refused() {
    let (handoff, mut conn, dir) = served().await;
    let full = dir.path().join("full");
    std::fs::write(&full, b"already here").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (pipe_read, _pipe_write) = std::io::pipe().unwrap();
    let cases: Vec<(&str, OwnedFd)> = vec![
        (
            "a directory",
            std::fs::File::open(dir.path()).unwrap().into(),
        ),
        (
            "a read-only file",
            std::fs::File::open(&empty).unwrap().into(),
        ),
        (
            "a file open for appending",
            OpenOptions::new().append(true).open(&empty).unwrap().into(),
        ),
        (
            "a file that is not empty",
            OpenOptions::new().write(true).open(&full).unwrap().into(),
        ),
        ("a pipe", pipe_read.into()),
        (
            "a file opened with O_PATH",
            OpenOptions::new()
                .write(true)
                .custom_flags(libc_o_path())
                .open(&empty)
                .unwrap()
                .into(),
        ),
    ];
    for (what, fd) in cases {
        let mut ticket = handoff.ticket(me()).unwrap();
        let reply = send_file(&mut conn, ticket.id(), 0, Some(fd.as_fd()))
            .await
            .unwrap();
        assert_eq!(reply, Reply::Taken as u8, "{what}");
        let err = ticket.file(0, WAIT).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{what}: {err}");
    }
    assert_eq!(std::fs::read(&full).unwrap(), b"already here");
}

/// `O_PATH`, which std does not name.
fn libc_o_path() -> i32 {
    OFlags::PATH.bits() as i32
}

#[test]
fn only_the_daemons_own_user_gets_a_ticket() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _in = rt.enter();
    let handoff = Arc::new(Handoff::default());
    assert!(handoff.ticket_for(&Caller::Owner).unwrap().is_some());
    for other in [
        Caller::OtherUser(Some(me() + 1)),
        Caller::OtherUser(None),
        Caller::Remote,
    ] {
        assert!(handoff.ticket_for(&other).unwrap().is_none(), "{other:?}");
    }
}
