package dev.satchel.client;

import dev.satchel.v1.PullResponse;
import io.grpc.Status;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * TEST-ONLY FAKE of the blocking stub's Pull answer: replays recorded messages, then ends the way
 * grpc-java's blocking iterator ends a call, by returning false from {@link #hasNext()} for an OK
 * status and throwing the status's {@link io.grpc.StatusRuntimeException} for any other. A real
 * daemon cannot be made to send the broken streams of clients/conformance/pull_streams.json, so
 * {@link Pull} is fed this instead.
 */
final class ReplayedPullStream implements Iterator<PullResponse> {
  private final List<PullResponse> messages;
  private final Status end;
  private int next;

  ReplayedPullStream(List<PullResponse> messages, Status end) {
    this.messages = List.copyOf(messages);
    this.end = end;
  }

  @Override
  public boolean hasNext() {
    if (next < messages.size()) {
      return true;
    }
    if (!end.isOk()) {
      throw end.asRuntimeException();
    }
    return false;
  }

  @Override
  public PullResponse next() {
    if (!hasNext()) {
      throw new NoSuchElementException();
    }
    return messages.get(next++);
  }
}
