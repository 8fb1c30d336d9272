package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.protobuf.ByteString;
import dev.satchel.v1.Descriptor;
import dev.satchel.v1.FileDone;
import dev.satchel.v1.FileHeader;
import dev.satchel.v1.PullResponse;
import dev.satchel.v1.PulledManifest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pull streams a real daemon never sends (it refuses these titles itself), fed straight to the
 * client's Pull: each fails with its code before the first byte is written and leaves nothing.
 */
class PullStreamTest {
  static final ByteString DATA = ByteString.copyFromUtf8("the bytes of a pulled file\n");
  static final String DIGEST = sha256(DATA);
  static final String OTHER = "sha256:" + "0".repeat(64);

  @TempDir Path tmp;

  record Case(String name, Status.Code want, List<PullResponse> stream) {}

  @TestFactory
  Stream<DynamicTest> pullChecksTitlesBeforeWriting() {
    PullResponse m = manifest("a.txt");
    Status.Code bad = Status.Code.INVALID_ARGUMENT;
    List<Case> cases =
        List.of(
            new Case("a file in a subdirectory", Status.Code.OK,
                file(manifest("d/a.txt"), "d/a.txt", DIGEST)),
            new Case("unsafe title in the manifest", bad,
                file(manifest("../a.txt"), "../a.txt", DIGEST)),
            new Case("a file and a directory of one name", bad,
                file(manifest("x", "x/y"), "x", DIGEST)),
            new Case("two layers of one name", bad,
                file(manifest("a.txt", "a.txt"), "a.txt", DIGEST)),
            // A protocol break (clients/conformance/pull_streams.json), not a bad title.
            new Case("a file the manifest does not name", Status.Code.INTERNAL,
                file(m, "b.txt", DIGEST)),
            new Case("a file before the manifest", Status.Code.INTERNAL,
                withManifestLast(file(m, "a.txt", DIGEST))),
            new Case("a manifest that is not JSON", bad, file(raw("not json"), "a.txt", DIGEST)),
            new Case("a corrupt file leaves no directory made for it", Status.Code.DATA_LOSS,
                file(manifest("d/e/a.txt"), "d/e/a.txt", OTHER)));
    List<DynamicTest> tests = new ArrayList<>();
    for (Case c : cases) {
      tests.add(dynamicTest(c.name(), () -> run(c)));
    }
    return tests.stream();
  }

  private void run(Case c) throws Exception {
    Path out = Files.createTempDirectory(tmp, "out");
    Options options = Options.builder().outputDir(out).build();
    if (c.want() == Status.Code.OK) {
      try (Pull pull = new Pull(options)) {
        PullResult result = pull.run(c.stream().iterator());
        assertEquals(1, result.files().size());
        assertEquals(DATA, ByteString.copyFrom(Files.readAllBytes(result.files().get(0))));
      }
      return;
    }
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> {
              try (Pull pull = new Pull(options)) {
                pull.run(c.stream().iterator());
              }
            });
    assertEquals(c.want(), e.getStatus().getCode(), e.toString());
    try (var listing = Files.list(out)) {
      assertEquals(List.of(), listing.toList(), "a failed pull leaves nothing");
    }
  }

  static PullResponse manifest(String... titles) {
    JsonArray layers = new JsonArray();
    for (String t : titles) {
      JsonObject annotations = new JsonObject();
      annotations.addProperty("org.opencontainers.image.title", t);
      JsonObject layer = new JsonObject();
      layer.add("annotations", annotations);
      layers.add(layer);
    }
    JsonObject m = new JsonObject();
    m.add("layers", layers);
    return raw(m.toString());
  }

  static PullResponse raw(String content) {
    return PullResponse.newBuilder()
        .setManifest(PulledManifest.newBuilder().setContent(ByteString.copyFromUtf8(content)))
        .build();
  }

  /** The manifest message, then one file named name whose layer has digest. */
  static List<PullResponse> file(PullResponse manifest, String name, String digest) {
    return List.of(
        manifest,
        PullResponse.newBuilder()
            .setFile(
                FileHeader.newBuilder()
                    .setName(name)
                    .setLayer(Descriptor.newBuilder().setDigest(digest).setSize(DATA.size())))
            .build(),
        PullResponse.newBuilder().setChunk(DATA).build(),
        PullResponse.newBuilder().setDone(FileDone.newBuilder().setDigest(digest)).build());
  }

  static List<PullResponse> withManifestLast(List<PullResponse> stream) {
    List<PullResponse> out = new ArrayList<>(stream.subList(1, stream.size()));
    out.add(stream.get(0));
    return out;
  }

  static String sha256(ByteString data) {
    try {
      return "sha256:"
          + HexFormat.of()
              .formatHex(MessageDigest.getInstance("SHA-256").digest(data.toByteArray()));
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }
}
