package dev.satchel.client;

import dev.satchel.v1.Progress;
import dev.satchel.v1.PushResult;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.function.Function;

/**
 * One Push or Attach call's response side: hands Progress to the options' callback (an exception
 * from it cancels the call and is rethrown to the caller), keeps the result, and lets the sending
 * thread wait for flow control ({@link #send}) and for the end ({@link #awaitResult}).
 */
final class Upload<Req, Resp> implements ClientResponseObserver<Req, Resp> {
  private final Function<Resp, Progress> progressOf;
  private final Function<Resp, PushResult> resultOf;
  private final Options options;
  private final Object lock = new Object();
  ClientCallStreamObserver<Req> requests;
  private PushResult result;
  private Throwable error;
  private RuntimeException callbackError;
  private boolean completed;

  Upload(Function<Resp, Progress> progressOf, Function<Resp, PushResult> resultOf, Options options) {
    this.progressOf = progressOf;
    this.resultOf = resultOf;
    this.options = options;
  }

  @Override
  public void beforeStart(ClientCallStreamObserver<Req> requests) {
    this.requests = requests;
    requests.setOnReadyHandler(
        () -> {
          synchronized (lock) {
            lock.notifyAll();
          }
        });
  }

  @Override
  public void onNext(Resp response) {
    Progress progress = progressOf.apply(response);
    if (progress != null) {
      try {
        options.progress().accept(progress);
      } catch (RuntimeException e) {
        // Stop the upload now, and hand the caller its callback's own exception.
        synchronized (lock) {
          if (callbackError == null) {
            callbackError = e;
          }
          lock.notifyAll();
        }
        requests.cancel("progress callback failed", e);
        return;
      }
    }
    PushResult r = resultOf.apply(response);
    if (r != null) {
      synchronized (lock) {
        result = r;
      }
    }
  }

  @Override
  public void onError(Throwable t) {
    synchronized (lock) {
      error = t;
      lock.notifyAll();
    }
  }

  @Override
  public void onCompleted() {
    synchronized (lock) {
      completed = true;
      lock.notifyAll();
    }
  }

  /** Sends a message once the transport can take it; fails fast if the call has ended. */
  void send(Req message) throws InterruptedException {
    synchronized (lock) {
      while (!requests.isReady() && error == null && callbackError == null && !completed) {
        lock.wait();
      }
      if (callbackError != null) {
        throw callbackError;
      }
      if (error != null) {
        throw rethrown(error);
      }
      if (completed) {
        throw Status.INTERNAL
            .withDescription("the daemon ended the call before all files were sent")
            .asRuntimeException();
      }
    }
    requests.onNext(message);
  }

  PushResult awaitResult() throws InterruptedException {
    synchronized (lock) {
      while (error == null && callbackError == null && !completed) {
        lock.wait();
      }
      if (callbackError != null) {
        throw callbackError;
      }
      if (error != null) {
        throw rethrown(error);
      }
      if (result == null) {
        throw Status.INTERNAL
            .withDescription("the daemon ended the call without a result")
            .asRuntimeException();
      }
      return result;
    }
  }

  /** The call's status, rethrown on the caller's thread (so its stack trace points there). */
  static StatusRuntimeException rethrown(Throwable t) {
    return new StatusRuntimeException(
        Status.fromThrowable(t).withCause(t), Status.trailersFromThrowable(t));
  }
}
