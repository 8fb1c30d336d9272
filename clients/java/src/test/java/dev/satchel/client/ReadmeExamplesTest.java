package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.satchel.client.examples.PullNewestAttachment;
import dev.satchel.client.examples.QuickStart;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The Java blocks of clients/java/README.md cannot drift: each is preceded by {@code <!-- example:
 * PATH -->} and must equal, character for character, the region between {@code // README begin}
 * and {@code // README end} of that test source (which the build compiles), and each example's
 * main runs here against a real satcheld and docker-registry (clients/testenv.sh).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ReadmeExamplesTest extends LiveTest {
  static final Pattern BLOCK = Pattern.compile("(?m)^```java\n(.*?)^```$", Pattern.DOTALL);
  static final Pattern MARKER = Pattern.compile("<!-- example: (\\S+) -->\n$");

  static Path readme() {
    return Path.of(System.getProperty("satchel.readme", "README.md"));
  }

  @Test
  void everyJavaBlockOfTheReadmeIsACompiledExample() throws IOException {
    String text = Files.readString(readme());
    Matcher block = BLOCK.matcher(text);
    List<String> mirrored = new ArrayList<>();
    while (block.find()) {
      Matcher marker = MARKER.matcher(text.substring(Math.max(0, block.start() - 200), block.start()));
      assertTrue(marker.find(), "the README's Java block at offset " + block.start()
          + " names the test source it mirrors (<!-- example: PATH -->)");
      Path source = readme().toAbsolutePath().getParent().resolve(marker.group(1));
      assertEquals(region(Files.readString(source)), block.group(1), "README block = " + source);
      mirrored.add(source.getFileName().toString());
    }
    assertEquals(List.of("QuickStart.java", "PullNewestAttachment.java"), mirrored);
  }

  /** The text between the "// README begin" and "// README end" lines. */
  static String region(String source) {
    String begin = "// README begin\n";
    int from = source.indexOf(begin);
    int to = source.indexOf("// README end\n");
    assertTrue(from >= 0 && to > from, "the source marks its README region");
    return source.substring(from + begin.length(), to);
  }

  @Test
  void quickStartRuns() throws Exception {
    Path app = Files.writeString(env.work.resolve("app.tar"), "not really a tarball\n");
    Path sbom = Files.writeString(env.work.resolve("sbom.json"), "{\"bomFormat\":\"CycloneDX\"}\n");
    Path out = env.work.resolve("quick-out");
    String repo = env.registry() + "/readme/app";
    QuickStart.main(
        new String[] {env.addr(), repo, app.toString(), sbom.toString(), out.toString()});
    assertEquals("not really a tarball\n", Files.readString(out.resolve("app.tar")));
    try (SatchelClient c = SatchelClient.connect(env.addr())) {
      Options registry = Options.builder().plainHttp(true).build();
      assertEquals(1, c.discover(repo + ":v1", registry).getReferrersCount(), "the SBOM attached");
    }
  }

  @Test
  void pullNewestAttachmentPullsTheNewestOfItsType() throws Exception {
    String subject = env.registry() + "/readme/newest:v1";
    Path out = env.work.resolve("newest-out");
    try (SatchelClient c = SatchelClient.connect(env.addr())) {
      Path file = Files.writeString(env.work.resolve("subject.txt"), "the subject\n");
      c.push(subject, List.of(file), Options.builder().plainHttp(true).build());
      for (String[] version :
          List.of(
              new String[] {"2026-06-01T00:00:00Z", "the newer SBOM\n"},
              new String[] {"2026-01-01T00:00:00Z", "the older SBOM\n"})) {
        Path sbom = Files.createDirectories(env.work.resolve("sbom-" + version[0].substring(0, 7)));
        Files.writeString(sbom.resolve("sbom.json"), version[1]);
        c.attach(subject, List.of(sbom.resolve("sbom.json")),
            Options.builder().plainHttp(true).artifactType("application/vnd.example.sbom.v1")
                .annotation("org.opencontainers.image.created", version[0]).build());
      }
    }
    PullNewestAttachment.main(new String[] {env.addr(), subject, out.toString()});
    assertEquals("the newer SBOM\n", Files.readString(out.resolve("sbom.json")));
  }
}
