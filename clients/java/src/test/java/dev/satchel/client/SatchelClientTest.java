package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.satchel.v1.Descriptor;
import dev.satchel.v1.DiscoverResponse;
import dev.satchel.v1.FileHeader;
import dev.satchel.v1.PushResult;
import dev.satchel.v1.Referrer;
import dev.satchel.v1.ResolveResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * End to end against a real satcheld and docker-registry started by clients/testenv.sh. The tests
 * run in order and build on each other: push a subject, attach a 50 MiB file, discover, pull,
 * resolve; then the error cases, among them a pull of a blob corrupted on the registry's disk.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SatchelClientTest extends LiveTest {
  static final String SBOM_TYPE = "application/vnd.example.sbom.v1";
  static final long BIG_SIZE = 50L << 20;

  String repo;

  PushResult subject;
  PushResult attached;
  Path bigFile;
  String bigSha256;

  @BeforeAll
  void up() {
    repo = env.registry() + "/demo/app";
  }

  @Test
  @Order(1)
  void pushSubject() throws IOException {
    assertTrue(env.vars.get("SATCHEL_ADDR").startsWith("unix:///"), "the daemon is on a Unix socket");
    Path readme = work.resolve("readme.txt");
    Files.writeString(readme, "hello from the Java client\n");
    subject = client.push(repo + ":v1", List.of(readme), registry);
    assertTrue(subject.getManifest().getDigest().startsWith("sha256:"));
    assertEquals(repo + "@" + subject.getManifest().getDigest(), subject.getReference());
    assertEquals(1, subject.getLayersCount());
    assertEquals(
        "readme.txt",
        subject.getLayers(0).getAnnotationsMap().get("org.opencontainers.image.title"));
  }

  @Test
  @Order(2)
  void attachBigFile() throws Exception {
    bigFile = work.resolve("sbom.bin");
    bigSha256 = writeRandom(bigFile, BIG_SIZE);
    AtomicLong lastProgress = new AtomicLong();
    Options options =
        Options.builder()
            .plainHttp(true)
            .artifactType(SBOM_TYPE)
            .annotation("org.example.kind", "sbom")
            .progress(p -> lastProgress.set(p.getDone()))
            .build();
    attached = client.attach(repo + ":v1", List.of(bigFile), options);
    assertEquals(SBOM_TYPE, attached.getManifest().getArtifactType());
    assertEquals(subject.getManifest().getDigest(), attached.getSubject().getDigest());
    assertEquals(1, attached.getLayersCount());
    assertEquals(BIG_SIZE, attached.getLayers(0).getSize());
    assertEquals(bigSha256, attached.getLayers(0).getDigest());
    assertEquals(BIG_SIZE, lastProgress.get(), "progress reached the file size");
  }

  @Test
  @Order(3)
  void discoverFindsAttachment() {
    DiscoverResponse found = client.discover(repo + ":v1", registry);
    assertEquals(subject.getManifest().getDigest(), found.getSubject().getDigest());
    assertEquals(1, found.getReferrersCount());
    Referrer referrer = found.getReferrers(0);
    assertEquals(attached.getManifest().getDigest(), referrer.getManifest().getDigest());
    assertEquals(SBOM_TYPE, referrer.getManifest().getArtifactType());
    assertEquals("sbom", referrer.getManifest().getAnnotationsMap().get("org.example.kind"));

    Options otherType = Options.builder().plainHttp(true).artifactType("application/x-none").build();
    assertEquals(0, client.discover(repo + ":v1", otherType).getReferrersCount());
  }

  @Test
  @Order(4)
  void pullByDigestStreamsToDisk() throws Exception {
    Path out = work.resolve("out");
    Options options = Options.builder().plainHttp(true).outputDir(out).build();
    PullResult pulled = client.pull(attached.getReference(), options);
    assertEquals(attached.getManifest().getDigest(), pulled.manifest().getManifest().getDigest());
    assertEquals(List.of(out.toAbsolutePath().normalize().resolve("sbom.bin")), pulled.files());
    Path file = pulled.files().get(0);
    assertEquals(BIG_SIZE, Files.size(file));
    assertEquals(bigSha256, sha256(file));
    try (var listing = Files.list(out)) {
      assertEquals(List.of(file), listing.toList(), "no temporary files are left behind");
    }
  }

  @Test
  @Order(5)
  void resolveTagGivesPushedDigest() {
    ResolveResponse resolved = client.resolve(repo + ":v1", registry);
    assertEquals(subject.getManifest().getDigest(), resolved.getManifest().getDigest());
    assertEquals(subject.getReference(), resolved.getReference());
  }

  @Test
  @Order(6)
  void resolveMissingTagIsNotFound() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.resolve(repo + ":nope", registry));
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
  }

  @Test
  @Order(7)
  void malformedReferenceIsInvalidArgument() {
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class, () -> client.resolve("Not A//Reference::", registry));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }

  @Test
  @Order(8)
  void attachWithoutArtifactTypeIsInvalidArgument() throws IOException {
    Path small = work.resolve("small.txt");
    Files.writeString(small, "x");
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> client.attach(repo + ":v1", List.of(small), registry));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }

  @Test
  @Order(9)
  void unsafePulledNamesAreRefused() {
    for (String name :
        List.of(
            "/etc/passwd", "../x", "a/../../x", "", "..", ".", "a/./b", "a//b", "a/", "a\\b",
            "a\0b")) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> Titles.check(name), name);
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), name);
    }
    Titles.check("a/b.txt");
  }

  @Test
  @Order(10)
  void pullOfMissingTagIsNotFoundAndWritesNothing() throws IOException {
    Path out = work.resolve("missing-out");
    Options options = Options.builder().plainHttp(true).outputDir(out).build();
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.pull(repo + ":nope", options));
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
    assertEquals(List.of(), list(out));
    assertFalse(Files.exists(out), "no output directory is made before the first file");
  }

  @Test
  @Order(11)
  void corruptedBlobFailsMidFileAndLeavesNothing() throws Exception {
    long size = 24L << 20;
    Path layer = work.resolve("layer.bin");
    writeRandom(layer, size);
    String ref = env.vars.get("SATCHEL_REGISTRY") + "/java/corrupt:v1";
    PushResult pushed = client.push(ref, List.of(layer), registry);
    String hex = pushed.getLayers(0).getDigest().substring("sha256:".length());
    Path data =
        Path.of(env.vars.get("SATCHEL_REGISTRY_BLOBS"), "sha256", hex.substring(0, 2), hex, "data");
    try (RandomAccessFile blob = new RandomAccessFile(data.toFile(), "rw")) {
      blob.seek(size - 10);
      int b = blob.read();
      blob.seek(size - 10);
      blob.write(b ^ 0xFF);
    }
    Path out = Files.createDirectories(work.resolve("corrupt-out"));
    List<Long> seen = Collections.synchronizedList(new ArrayList<>());
    Options options =
        Options.builder().plainHttp(true).outputDir(out).progress(p -> seen.add(p.getDone())).build();
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.pull(ref, options));
    assertEquals(Status.Code.DATA_LOSS, e.getStatus().getCode(), e.toString());
    assertTrue(seen.stream().anyMatch(done -> done > 0), "progress came before the failure");
    assertEquals(List.of(), list(out), "no file and no temporary file is left");
  }

  @Test
  @Order(12)
  void failingProgressCallbackCancelsTheUpload() throws Exception {
    Path big = work.resolve("cancelled.bin");
    writeRandom(big, 20L << 20);
    String ref = env.vars.get("SATCHEL_REGISTRY") + "/java/cancelled:v1";
    RuntimeException enough = new IllegalStateException("enough");
    Options options =
        Options.builder()
            .plainHttp(true)
            .progress(
                p -> {
                  throw enough;
                })
            .build();
    assertEquals(
        enough, assertThrows(RuntimeException.class, () -> client.push(ref, List.of(big), options)));
    // Cancelled, not finished behind the caller's back: 20 MiB would go up well within 3 s.
    for (int i = 0; i < 30; i++) {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> client.resolve(ref, registry));
      assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
      Thread.sleep(100);
    }
  }

  @Test
  @Order(13)
  void commitChecksDoneDigestLocalDigestAndSize() throws Exception {
    Path out = Files.createDirectories(work.resolve("commit-out")).toAbsolutePath();
    ByteString hello = ByteString.copyFromUtf8("hello");
    String sha256 =
        "sha256:" + java.util.HexFormat.of().formatHex(
            MessageDigest.getInstance("SHA-256").digest(hello.toByteArray()));
    String sha512 =
        "sha512:" + java.util.HexFormat.of().formatHex(
            MessageDigest.getInstance("SHA-512").digest(hello.toByteArray()));
    String other = "sha256:" + "0".repeat(64);
    // {layer digest, layer size, data, FileDone digest}
    List<Object[]> bad =
        List.of(
            new Object[] {sha256, 5L, hello, ""},
            new Object[] {sha256, 5L, hello, other},
            new Object[] {other, 5L, hello, other},
            new Object[] {sha256, 5L, ByteString.copyFromUtf8("hellO"), sha256},
            new Object[] {sha256, 6L, hello, sha256});
    for (Object[] c : bad) {
      Pull.PendingFile file = pending(out, (String) c[0], (long) c[1]);
      file.write((ByteString) c[2]);
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> file.commit((String) c[3]));
      assertEquals(Status.Code.DATA_LOSS, e.getStatus().getCode(), e.toString());
      assertEquals(List.of(), list(out));
    }
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> pending(out, "md5:" + "0".repeat(32), 5));
    assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
    assertEquals(List.of(), list(out));

    Pull.PendingFile file = pending(out, sha512, 5);
    file.write(hello);
    assertEquals(out.resolve("f.txt"), file.commit(sha512));
    assertEquals(List.of(out.resolve("f.txt")), list(out));
  }

  @Test
  @Order(14)
  void hashedPushSkipsBlobsTheRepositoryHas() throws Exception {
    Path file = work.resolve("skip.bin");
    String sha = writeRandom(file, 1L << 20, 7);
    String repository = env.vars.get("SATCHEL_REGISTRY") + "/java/skip";

    // Unset hashFirst: a 1 MiB file is hashed first (automatic policy).
    PushResult first = client.push(repository + ":a", List.of(file), registry);
    assertEquals(sha, first.getLayers(0).getDigest());
    assertEquals(0, first.getBlobsSkipped(), "a new repository has no blob to skip");

    PushResult second = client.push(repository + ":b", List.of(file), registry);
    assertEquals(sha, second.getLayers(0).getDigest());
    assertEquals(
        1, second.getBlobsSkipped(), "the digest was sent, so the layer the repository has is skipped");

    Options noHash = Options.builder().plainHttp(true).hashFirst(false).build();
    PushResult third = client.push(repository + ":c", List.of(file), noHash);
    assertEquals(sha, third.getLayers(0).getDigest());
    assertEquals(0, third.getBlobsSkipped(), "without a digest the daemon uploads the layer");

    Options hash = Options.builder().plainHttp(true).hashFirst(true).build();
    PushResult fourth = client.push(repository + ":d", List.of(file), hash);
    assertEquals(sha, fourth.getLayers(0).getDigest());
    assertEquals(1, fourth.getBlobsSkipped());
  }

  @Test
  @Order(15)
  void hashFirstPolicy() {
    assertEquals(256L << 20, SatchelClient.HASH_FIRST_BELOW);
    assertTrue(Options.DEFAULTS.hashFirst().isEmpty());
    assertTrue(Options.DEFAULTS.hashes(0));
    assertTrue(Options.DEFAULTS.hashes(SatchelClient.HASH_FIRST_BELOW - 1));
    assertFalse(Options.DEFAULTS.hashes(SatchelClient.HASH_FIRST_BELOW));
    Options always = Options.builder().hashFirst(true).build();
    assertEquals(java.util.Optional.of(true), always.hashFirst());
    assertTrue(always.hashes(SatchelClient.HASH_FIRST_BELOW));
    assertTrue(always.hashes(1L << 40));
    Options never = Options.builder().hashFirst(false).build();
    assertEquals(java.util.Optional.of(false), never.hashFirst());
    assertFalse(never.hashes(0));
    assertFalse(never.hashes(1));
  }

  private static Pull.PendingFile pending(Path out, String digest, long size)
      throws IOException {
    return Pull.PendingFile.create(
        OutputDir.open(out),
        FileHeader.newBuilder()
            .setName("f.txt")
            .setLayer(Descriptor.newBuilder().setDigest(digest).setSize(size))
            .build());
  }

  // ---- helpers

  private static String writeRandom(Path file, long size) throws Exception {
    return writeRandom(file, size, 42);
  }

  private static String writeRandom(Path file, long size, long seed) throws Exception {
    MessageDigest sha = MessageDigest.getInstance("SHA-256");
    Random random = new Random(seed);
    byte[] buf = new byte[1 << 20];
    try (OutputStream out = Files.newOutputStream(file)) {
      for (long left = size; left > 0; left -= buf.length) {
        random.nextBytes(buf);
        int n = (int) Math.min(left, buf.length);
        out.write(buf, 0, n);
        sha.update(buf, 0, n);
      }
    }
    return "sha256:" + java.util.HexFormat.of().formatHex(sha.digest());
  }

  private static String sha256(Path file) throws Exception {
    MessageDigest sha = MessageDigest.getInstance("SHA-256");
    byte[] buf = new byte[1 << 20];
    try (InputStream in = Files.newInputStream(file)) {
      int n;
      while ((n = in.read(buf)) > 0) {
        sha.update(buf, 0, n);
      }
    }
    return "sha256:" + java.util.HexFormat.of().formatHex(sha.digest());
  }

  private static List<Path> list(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return List.of();
    }
    try (var listing = Files.list(dir)) {
      return listing.toList();
    }
  }
}
