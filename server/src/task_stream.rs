//! A response stream fed by a task of its own, which ends with the stream:
//! when the caller goes away or its deadline passes, the answer is
//! dropped, and so is the work that was still making it (a push does not
//! go on to tag what its caller gave up on).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Runs `work` with the sending half of a channel of `capacity`; the
/// returned stream yields what it sends and aborts it when dropped.
pub fn spawn<T, F, Fut>(capacity: usize, work: F) -> TaskStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(capacity);
    TaskStream {
        rx: ReceiverStream::new(rx),
        task: tokio::spawn(work(tx)),
    }
}

/// See [`spawn`].
pub struct TaskStream<T> {
    rx: ReceiverStream<T>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Stream for TaskStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

impl<T> Drop for TaskStream<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn dropping_the_stream_stops_the_work() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let mut stream = spawn(1, |tx| async move {
            tx.send(1).await.unwrap();
            // Would run forever; only the abort ends it.
            let _keep = done_tx;
            std::future::pending::<()>().await;
        });
        assert_eq!(stream.next().await, Some(1));
        drop(stream);
        // The task's end drops its end of the oneshot.
        assert!(done_rx.await.is_err());
    }
}
