package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.satchel.v1.PushResult;
import dev.satchel.v1.WatchReferrersResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A watch of a subject's referrers sees the current (empty) set, then a referrer attached through
 * the same client (testenv's daemon polls twice a second).
 */
class WatchTest extends LiveTest {
  static final String SBOM_TYPE = "application/vnd.example.sbom.v1";

  @Test
  void aWatchSeesTheCurrentSetThenAnAttach() throws Exception {
    Path file = work.resolve("app.txt");
    Files.writeString(file, "watched from Java\n");
    String subject = env.registry() + "/java/watched:v1";
    Options plain = Options.builder().plainHttp(true).build();
    client.push(subject, List.of(file), plain);
    Options watch =
        Options.builder()
            .plainHttp(true)
            .artifactType(SBOM_TYPE)
            .deadline(Duration.ofSeconds(30))
            .build();
    Iterator<WatchReferrersResponse> events = client.watchReferrers(subject, watch);
    WatchReferrersResponse first = events.next();
    assertTrue(first.hasCurrent(), first.toString());
    assertEquals(0, first.getCurrent().getReferrersCount());
    PushResult attached =
        client.attach(
            subject, List.of(file), Options.builder().plainHttp(true).artifactType(SBOM_TYPE).build());
    WatchReferrersResponse next = events.next();
    assertTrue(next.hasAppeared(), next.toString());
    assertEquals(attached.getManifest().getDigest(), next.getAppeared().getDigest());
  }
}
