package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.grpc.Deadline;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The daemon answers a deadline it notices before the client does with CANCELLED ("Timeout
 * expired"); past the call's deadline the caller sees DEADLINE_EXCEEDED. Before it, or for other
 * codes, errors pass unchanged.
 */
class DeadlineTest {
  static final StatusRuntimeException CANCELLED =
      Status.CANCELLED.withDescription("Timeout expired").asRuntimeException();

  @Test
  void cancelledPastTheDeadlineIsDeadlineExceeded() {
    Deadline expired = Deadline.after(-1, TimeUnit.SECONDS);
    assertEquals(
        Status.Code.DEADLINE_EXCEEDED,
        SatchelClient.surfaced(CANCELLED, expired).getStatus().getCode());
  }

  @Test
  void cancelledBeforeTheDeadlineStaysCancelled() {
    Deadline later = Deadline.after(1, TimeUnit.HOURS);
    assertEquals(
        Status.Code.CANCELLED, SatchelClient.surfaced(CANCELLED, later).getStatus().getCode());
    assertEquals(
        Status.Code.CANCELLED, SatchelClient.surfaced(CANCELLED, null).getStatus().getCode());
  }

  @Test
  void otherCodesPastTheDeadlinePassUnchanged() {
    Deadline expired = Deadline.after(-1, TimeUnit.SECONDS);
    StatusRuntimeException notFound = Status.NOT_FOUND.asRuntimeException();
    assertEquals(notFound, SatchelClient.surfaced(notFound, expired));
  }
}
