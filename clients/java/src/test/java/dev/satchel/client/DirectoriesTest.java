package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.protobuf.ByteString;
import dev.satchel.v1.ArtifactSpec;
import dev.satchel.v1.Descriptor;
import dev.satchel.v1.FileChunk;
import dev.satchel.v1.FileSpec;
import dev.satchel.v1.PullRequest;
import dev.satchel.v1.PullResponse;
import dev.satchel.v1.PushHeader;
import dev.satchel.v1.PushRequest;
import dev.satchel.v1.PushResponse;
import dev.satchel.v1.PushResult;
import dev.satchel.v1.Target;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Directories pushed as the ORAS CLI pushes them (a tar+gzip layer marked for unpacking) and
 * pulled back into the same tree, through the real daemon and registry of clients/testenv.sh. The
 * tests run in order: push, pull, pull again over the tree.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DirectoriesTest extends LiveTest {
  Path src;
  PushResult pushed;

  /** The archives pack left in the temporary directory (none, once a push is over). */
  static Set<String> packArchives() throws IOException {
    try (Stream<Path> list = Files.list(Path.of(System.getProperty("java.io.tmpdir")))) {
      return list.map(p -> p.getFileName().toString())
          .filter(n -> n.startsWith(".satchel-pack-"))
          .collect(Collectors.toSet());
    }
  }

  /** A directory with a nested directory, an executable, a long name and links. */
  private Path sourceTree() throws IOException {
    Path dir = Files.createDirectories(Files.createTempDirectory(work, "src-").resolve("tree"));
    Files.createDirectories(dir.resolve("sub/deeper"));
    Path run = Files.writeString(dir.resolve("run.sh"), "#!/bin/sh\necho hi\n");
    Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.writeString(dir.resolve("sub/b.txt"), "bee\n");
    Files.writeString(dir.resolve("sub/deeper/c.txt"), "c".repeat(300_000));
    Files.writeString(dir.resolve("n".repeat(150)), "long name\n");
    Files.createSymbolicLink(dir.resolve("top"), Path.of("run.sh"));
    Files.createSymbolicLink(dir.resolve("sub/up"), Path.of("../run.sh"));
    Files.setLastModifiedTime(run, FileTime.from(1_600_000_000L, TimeUnit.SECONDS));
    Files.setLastModifiedTime(
        dir.resolve("sub/b.txt"), FileTime.from(1_650_000_000L, TimeUnit.SECONDS));
    return dir;
  }

  /** The modification times, in whole seconds, of the regular files under root. */
  static Map<String, Long> mtimes(Path root) throws IOException {
    Map<String, Long> out = new TreeMap<>();
    try (Stream<Path> all = Files.walk(root)) {
      for (Path p : all.toList()) {
        if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
          out.put(
              root.relativize(p).toString(),
              Files.getLastModifiedTime(p, LinkOption.NOFOLLOW_LINKS).to(TimeUnit.SECONDS));
        }
      }
    }
    return out;
  }

  /** GNU tar's listing of a tar: its output lines. */
  static List<String> tarListing(byte[] tar, String... args) throws Exception {
    List<String> command = new java.util.ArrayList<>(List.of("tar"));
    command.addAll(List.of(args));
    command.addAll(List.of("-f", "-"));
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    CompletableFuture<byte[]> out =
        CompletableFuture.supplyAsync(
            () -> {
              try (InputStream in = p.getInputStream()) {
                return in.readAllBytes();
              } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            });
    try (var stdin = p.getOutputStream()) {
      stdin.write(tar);
    }
    assertEquals(0, p.waitFor());
    return List.of(new String(out.get(), StandardCharsets.UTF_8).trim().split("\n"));
  }

  @Test
  @Order(1)
  void aDirectoryIsPushedAsOneTarGzipLayerMarkedForUnpacking() throws Exception {
    src = sourceTree();
    Set<String> before = packArchives();
    pushed = client.push(env.registry() + "/java/dirs:v1", List.of(src), registry);
    assertEquals(before, packArchives(), "the packed archive was left behind");
    assertEquals(1, pushed.getLayersCount());
    Descriptor layer = pushed.getLayers(0);
    assertEquals(Directories.MEDIA_TYPE, layer.getMediaType());
    assertEquals("tree", layer.getAnnotationsMap().get("org.opencontainers.image.title"));
    assertEquals("true", layer.getAnnotationsMap().get(Directories.UNPACK_ANNOTATION));

    // The layer's bytes: a gzip of the tar the content digest names, its entries under the
    // title, sorted, owned by uid and gid 0.
    ByteArrayOutputStream blob = new ByteArrayOutputStream();
    Iterator<PullResponse> stream =
        client.blockingStub().pull(PullRequest.newBuilder().setTarget(target(pushed)).build());
    while (stream.hasNext()) {
      PullResponse r = stream.next();
      if (r.hasChunk()) {
        r.getChunk().writeTo(blob);
      }
    }
    byte[] tar = new GZIPInputStream(new ByteArrayInputStream(blob.toByteArray())).readAllBytes();
    assertEquals(
        "sha256:" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(tar)),
        layer.getAnnotationsMap().get(Directories.TAR_DIGEST_ANNOTATION));
    assertEquals(
        List.of(
            "tree",
            "tree/" + "n".repeat(150),
            "tree/run.sh",
            "tree/sub",
            "tree/sub/b.txt",
            "tree/sub/deeper",
            "tree/sub/deeper/c.txt",
            "tree/sub/up",
            "tree/top"),
        tarListing(tar, "-t").stream().map(n -> n.replaceAll("/$", "")).toList());
    for (String line : tarListing(tar, "-tv", "--numeric-owner")) {
      assertTrue(line.matches("^\\S+ 0/0 .*"), line);
    }
  }

  private Target target(PushResult r) {
    return Target.newBuilder().setReference(r.getReference()).setPlainHttp(true).build();
  }

  @Test
  @Order(2)
  void thePulledDirectoryIsThePushedTreeModesAndTimesKept() throws Exception {
    Path out = work.resolve("pulled");
    PullResult result =
        client.pull(pushed.getReference(), Options.builder().plainHttp(true).outputDir(out).build());
    assertEquals(List.of(out.resolve("tree").toAbsolutePath()), result.files());
    assertEquals(ArchivesTest.tree(src), ArchivesTest.tree(out.resolve("tree")));
    assertEquals(mtimes(src), mtimes(out.resolve("tree")));
    // Neither the archive nor a temporary tree is left beside it.
    assertEquals(List.of("tree"), ArchivesTest.names(out));
  }

  @Test
  @Order(3)
  void aSecondPullOverAnExistingTreeReplacesItWhole() throws Exception {
    Path out = work.resolve("pulled");
    Path tree = out.resolve("tree");
    Files.writeString(tree.resolve("stale.txt"), "from before\n");
    Files.writeString(tree.resolve("run.sh"), "changed\n");
    Files.createDirectory(tree.resolve("sub/extra"));
    client.pull(pushed.getReference(), Options.builder().plainHttp(true).outputDir(out).build());
    assertEquals(ArchivesTest.tree(src), ArchivesTest.tree(tree));
    assertEquals(List.of("tree"), ArchivesTest.names(out));
  }

  @Test
  @Order(4)
  void aSocketInsideADirectoryIsRefusedAndNoArchiveIsLeft() throws Exception {
    Path dir = Files.createDirectories(Files.createTempDirectory(work, "sock-").resolve("d"));
    Files.writeString(dir.resolve("a.txt"), "a");
    Set<String> before = packArchives();
    try (ServerSocketChannel socket = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
      socket.bind(UnixDomainSocketAddress.of(dir.resolve("s.sock")));
      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class,
              () -> client.push(env.registry() + "/java/dirs:sock", List.of(dir), registry));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
      assertTrue(e.getStatus().getDescription().contains("a socket"), e.toString());
    }
    assertEquals(before, packArchives());
  }

  /**
   * Pushes {@code file} as a layer titled {@code title} with {@code annotations}, through the raw
   * stub: the client's push sets no layer annotations of the caller's.
   */
  private PushResult pushRaw(String ref, Path file, String title, Map<String, String> annotations)
      throws Exception {
    byte[] data = Files.readAllBytes(file);
    CompletableFuture<PushResult> result = new CompletableFuture<>();
    StreamObserver<PushRequest> requests =
        client
            .asyncStub()
            .push(
                new StreamObserver<PushResponse>() {
                  @Override
                  public void onNext(PushResponse r) {
                    if (r.hasResult()) {
                      result.complete(r.getResult());
                    }
                  }

                  @Override
                  public void onError(Throwable t) {
                    result.completeExceptionally(t);
                  }

                  @Override
                  public void onCompleted() {
                    result.completeExceptionally(new IllegalStateException("no result"));
                  }
                });
    FileSpec spec =
        FileSpec.newBuilder()
            .setName(title)
            .setMediaType(Directories.MEDIA_TYPE)
            .setSize(data.length)
            .putAllAnnotations(annotations)
            .build();
    requests.onNext(
        PushRequest.newBuilder()
            .setHeader(
                PushHeader.newBuilder()
                    .setTarget(Target.newBuilder().setReference(ref).setPlainHttp(true))
                    .setArtifact(ArtifactSpec.newBuilder().addFiles(spec)))
            .build());
    requests.onNext(
        PushRequest.newBuilder()
            .setChunk(FileChunk.newBuilder().setFileIndex(0).setData(ByteString.copyFrom(data)))
            .build());
    requests.onCompleted();
    return result.get(60, TimeUnit.SECONDS);
  }

  @Test
  @Order(5)
  void aDirectoryLayerWhoseContentDigestIsWrongIsDataLossAndLeavesNothing() throws Exception {
    JsonObject c = ArchivesTest.find("a wrong content digest");
    Path file = Files.write(Files.createTempDirectory(work, "wrong-").resolve("layer.tar.gz"),
        ArchivesTest.archive(c));
    Map<String, String> annotations =
        Map.of(
            Directories.UNPACK_ANNOTATION, "true",
            Directories.TAR_DIGEST_ANNOTATION, c.get("tar_digest").getAsString());
    PushResult wrong = pushRaw(env.registry() + "/java/dirs:wrong", file, "d", annotations);
    Path out = work.resolve("wrong-out");
    Options into = Options.builder().plainHttp(true).outputDir(out).build();
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.pull(wrong.getReference(), into));
    assertEquals(Status.Code.DATA_LOSS, e.getStatus().getCode(), e.toString());
    assertEquals(List.of(), ArchivesTest.names(out));

    // The same bytes with the right content digest unpack.
    byte[] tar =
        new GZIPInputStream(new ByteArrayInputStream(ArchivesTest.archive(c))).readAllBytes();
    String right =
        "sha256:" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(tar));
    PushResult fixed =
        pushRaw(
            env.registry() + "/java/dirs:right",
            file,
            "d",
            Map.of(
                Directories.UNPACK_ANNOTATION, "true", Directories.TAR_DIGEST_ANNOTATION, right));
    client.pull(fixed.getReference(), into);
    assertEquals(Map.of("x", "file plain: x"), ArchivesTest.tree(out.resolve("d")));
    assertEquals(List.of("d"), ArchivesTest.names(out));
  }
}
