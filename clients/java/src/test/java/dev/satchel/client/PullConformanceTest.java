package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import dev.satchel.v1.PullResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every case of clients/conformance/pull_streams.json, one test each: its messages (PullResponses in
 * protobuf's JSON mapping) and ending status are replayed by the test-only {@link
 * ReplayedPullStream} into {@link Pull}, the state machine {@link SatchelClient#pull} runs on the
 * daemon's answer, with an output directory that does not exist yet. The code, the regular files
 * left (and nothing else) and whether the directory exists must be exactly the case's {@code
 * expect}.
 */
class PullConformanceTest {
  @TempDir Path tmp;

  static Stream<Arguments> cases() {
    List<Arguments> out = new ArrayList<>();
    for (JsonElement e : Conformance.load("pull_streams.json").getAsJsonArray("streams")) {
      JsonObject c = e.getAsJsonObject();
      out.add(Arguments.of(c.get("name").getAsString(), c));
    }
    return out.stream();
  }

  @Test
  void everyCaseHasItsOwnName() {
    Set<String> names = new HashSet<>();
    cases().forEach(a -> assertTrue(names.add((String) a.get()[0]), "duplicate " + a.get()[0]));
    assertFalse(names.isEmpty(), "pull_streams.json has cases");
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void pullStream(String name, JsonObject c) throws Exception {
    Path out = tmp.resolve("out");
    Options options = Options.builder().outputDir(out).build();
    ReplayedPullStream stream = new ReplayedPullStream(messages(c), status(c.getAsJsonObject("end")));
    JsonObject expect = c.getAsJsonObject("expect");
    Status.Code want = Status.Code.valueOf(expect.get("code").getAsString());

    if (want == Status.Code.OK) {
      try (Pull pull = new Pull(options)) {
        pull.run(stream);
      }
    } else {
      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class,
              () -> {
                try (Pull pull = new Pull(options)) {
                  pull.run(stream);
                }
              },
              c.get("why").getAsString());
      assertEquals(want, e.getStatus().getCode(), e.toString());
    }
    assertEquals(expect.get("dir_exists").getAsBoolean(), Files.exists(out), "dir_exists");
    Map<String, String> wantFiles = new TreeMap<>();
    expect.getAsJsonObject("files").entrySet()
        .forEach(f -> wantFiles.put(f.getKey(), f.getValue().getAsString()));
    assertEquals(wantFiles, regularFiles(out), "the regular files left, and nothing else");
  }

  static List<PullResponse> messages(JsonObject c) throws InvalidProtocolBufferException {
    List<PullResponse> out = new ArrayList<>();
    for (JsonElement m : c.getAsJsonArray("messages")) {
      PullResponse.Builder b = PullResponse.newBuilder();
      JsonFormat.parser().merge(m.toString(), b);
      out.add(b.build());
    }
    return out;
  }

  static Status status(JsonObject end) {
    Status s = Status.fromCode(Status.Code.valueOf(end.get("code").getAsString()));
    return end.has("message") ? s.withDescription(end.get("message").getAsString()) : s;
  }

  /** Every regular file under root (relative, '/'-separated) with its UTF-8 content. */
  static Map<String, String> regularFiles(Path root) throws IOException {
    Map<String, String> out = new TreeMap<>();
    if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
      return out;
    }
    try (Stream<Path> paths = Files.walk(root)) {
      for (Path p : paths.toList()) {
        if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
          String rel = root.relativize(p).toString().replace(p.getFileSystem().getSeparator(), "/");
          out.put(rel, Files.readString(p, StandardCharsets.UTF_8));
        }
      }
    }
    return out;
  }
}
