package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.TestInstance;

/**
 * The unpack rules against every case of clients/conformance/archives.json, through both ways
 * {@link OutputDir} walks (openat and by path), and the tar reader on what the vectors do not
 * cover (GNU long names, the ustar prefix, a bad checksum, concatenated gzip members). No daemon.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ArchivesTest {
  private Path work;

  @BeforeAll
  void makeWork() throws IOException {
    work = Files.createTempDirectory("satchel-java-archives-");
  }

  @AfterAll
  void removeWork() throws IOException {
    try (Stream<Path> all = Files.walk(work)) {
      for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  /** What an unpack ended with: its code, the output directory, the tree on success. */
  record Outcome(Status.Code code, Path out, Path root, Exception error) {}

  interface Opener {
    OutputDir open(Path dir) throws IOException;
  }

  private Outcome run(
      Opener opener, String title, byte[] archive, Map<String, String> annotations,
      Directories.Limits limits) throws IOException {
    Path out = Files.createTempDirectory(work, "case-");
    Map<String, String> all = new HashMap<>(annotations);
    all.put(Directories.UNPACK_ANNOTATION, "true");
    try (OutputDir dir = opener.open(out)) {
      Path root = Directories.unpack(new ByteArrayInputStream(archive), dir, title, all, limits);
      return new Outcome(Status.Code.OK, out, root, null);
    } catch (StatusRuntimeException e) {
      return new Outcome(e.getStatus().getCode(), out, null, e);
    }
  }

  private Outcome run(String title, byte[] archive, Map<String, String> annotations)
      throws IOException {
    return run(OutputDir::open, title, archive, annotations, Directories.Limits.DEFAULT);
  }

  static List<JsonObject> cases() {
    List<JsonObject> out = new ArrayList<>();
    for (JsonElement c : Conformance.load("archives.json").getAsJsonArray("cases")) {
      out.add(c.getAsJsonObject());
    }
    return out;
  }

  static Map<String, String> digestOf(JsonObject c) {
    return c.has("tar_digest")
        ? Map.of(Directories.TAR_DIGEST_ANNOTATION, c.get("tar_digest").getAsString())
        : Map.of();
  }

  static JsonObject find(String name) {
    return cases().stream()
        .filter(c -> c.get("name").getAsString().equals(name))
        .findFirst()
        .orElseThrow();
  }

  static byte[] archive(JsonObject c) {
    return Base64.getDecoder().decode(c.get("archive").getAsString());
  }

  @TestFactory
  Stream<DynamicTest> everySharedArchiveCase() {
    List<DynamicTest> tests = new ArrayList<>();
    Map<String, Opener> ways = Map.of("openat", OutputDir::open, "by path", OutputDir::openByPath);
    for (JsonObject c : cases()) {
      for (Map.Entry<String, Opener> way : new TreeMap<>(ways).entrySet()) {
        String name = c.get("name").getAsString() + " (" + way.getKey() + ")";
        tests.add(dynamicTest(name, () -> check(c, way.getValue())));
      }
    }
    return tests.stream();
  }

  private void check(JsonObject c, Opener opener) throws IOException {
    JsonObject limits = c.has("limits") ? c.getAsJsonObject("limits") : new JsonObject();
    Directories.Limits l =
        new Directories.Limits(
            limits.has("max_bytes")
                ? limits.get("max_bytes").getAsLong()
                : Directories.Limits.DEFAULT.maxBytes(),
            limits.has("max_entries")
                ? limits.get("max_entries").getAsLong()
                : Directories.Limits.DEFAULT.maxEntries());
    String title = c.get("title").getAsString();
    Outcome o = run(opener, title, archive(c), digestOf(c), l);
    JsonObject expect = c.getAsJsonObject("expect");
    assertEquals(
        Status.Code.valueOf(expect.get("code").getAsString()), o.code(), String.valueOf(o.error()));
    if (o.code() != Status.Code.OK) {
      assertEquals(List.of(), names(o.out()), "a failed unpack left something behind");
      return;
    }
    assertEquals(o.out().resolve(title), o.root());
    assertEquals(expected(expect.getAsJsonObject("tree")), tree(o.root()));
    // Only the tree: no temporary name beside it.
    assertEquals(List.of(o.root().getFileName().toString()), names(o.root().getParent()));
  }

  /** archives.json's tree in the form {@link #tree} gives. */
  static Map<String, String> expected(JsonObject tree) {
    Map<String, String> out = new TreeMap<>();
    for (Map.Entry<String, JsonElement> e : tree.entrySet()) {
      JsonObject node = e.getValue().getAsJsonObject();
      if (node.has("dir")) {
        out.put(e.getKey(), "dir");
      } else if (node.has("link")) {
        out.put(e.getKey(), "link -> " + node.get("link").getAsString());
      } else {
        out.put(
            e.getKey(),
            "file " + (node.get("exec").getAsBoolean() ? "exec" : "plain") + ": "
                + node.get("file").getAsString());
      }
    }
    return out;
  }

  /** Everything under root, links not followed: "dir", "link -> T" or "file exec|plain: C". */
  static Map<String, String> tree(Path root) throws IOException {
    Map<String, String> out = new TreeMap<>();
    try (Stream<Path> paths = Files.walk(root)) {
      for (Path p : paths.toList()) {
        if (p.equals(root)) {
          continue;
        }
        String rel = root.relativize(p).toString();
        if (Files.isSymbolicLink(p)) {
          out.put(rel, "link -> " + Files.readSymbolicLink(p));
        } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
          out.put(rel, "dir");
        } else {
          boolean exec =
              Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS)
                  .contains(PosixFilePermission.OWNER_EXECUTE);
          out.put(rel, "file " + (exec ? "exec" : "plain") + ": " + Files.readString(p));
        }
      }
    }
    return out;
  }

  static List<String> names(Path dir) throws IOException {
    try (Stream<Path> list = Files.list(dir)) {
      return list.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void filesKeepTheirModificationTimeAndMode() throws Exception {
    JsonObject c = cases().get(0);
    Outcome o = run(c.get("title").getAsString(), archive(c), digestOf(c));
    assertEquals(Status.Code.OK, o.code(), String.valueOf(o.error()));
    Path run = o.root().resolve("run.sh");
    // make_archives.py writes every entry with mtime 1,700,000,000.
    assertEquals(1_700_000_000_000L, Files.getLastModifiedTime(run).toMillis());
    int mode = (Integer) Files.getAttribute(run, "unix:mode");
    assertEquals(0755, mode & 0755, Integer.toOctalString(mode));
  }

  @Test
  void anUnknownDigestAlgorithmIsNotChecked() throws Exception {
    JsonObject c = find("a wrong content digest");
    Outcome o =
        run("d", archive(c), Map.of(Directories.TAR_DIGEST_ANNOTATION, "md5:0123"));
    assertEquals(Status.Code.OK, o.code(), String.valueOf(o.error()));
  }

  @Test
  void aSha512DigestIsChecked() throws Exception {
    byte[] archive = archive(find("no content digest to check"));
    byte[] tar = new GZIPInputStream(new ByteArrayInputStream(archive)).readAllBytes();
    String right = "sha512:" + hex(MessageDigest.getInstance("SHA-512").digest(tar));
    assertEquals(
        Status.Code.OK,
        run("d", archive, Map.of(Directories.TAR_DIGEST_ANNOTATION, right)).code());
    String wrong = "sha512:" + hex(MessageDigest.getInstance("SHA-512").digest(new byte[1]));
    assertEquals(
        Status.Code.DATA_LOSS,
        run("d", archive, Map.of(Directories.TAR_DIGEST_ANNOTATION, wrong)).code());
  }

  @Test
  void linkTargetsMayClimbOnlyAtTheirStartAndWithinTheTree() {
    for (String[] ok : new String[][] {{"a", "b"}, {"s/a", "../b"}, {"s/t/a", "../../b/c"}}) {
      Directories.checkLinkTarget("d", ok[0], ok[1]);
    }
    for (String[] bad :
        new String[][] {
          {"a", "../b"}, {"s/a", "../../b"}, {"s/a", "b/../c"}, {"s/a", "./b"}, {"a", "/b"},
          {"a", ""}
        }) {
      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class,
              () -> Directories.checkLinkTarget("d", bad[0], bad[1]),
              Arrays.toString(bad));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    }
  }

  /** A test-only tar header block written byte for byte (as make_archives.py's raw()). */
  static byte[] header(String name, char type, long size, String link, String magic, String prefix) {
    byte[] h = new byte[512];
    put(h, 0, name);
    put(h, 100, "0000644\0");
    put(h, 108, "0000000\0");
    put(h, 116, "0000000\0");
    put(h, 124, String.format("%011o\0", size));
    put(h, 136, String.format("%011o\0", 1_700_000_000L));
    h[156] = (byte) type;
    put(h, 157, link);
    put(h, 257, magic);
    put(h, 345, prefix);
    Arrays.fill(h, 148, 156, (byte) ' ');
    int sum = 0;
    for (byte b : h) {
      sum += b & 0xff;
    }
    put(h, 148, String.format("%06o\0 ", sum));
    return h;
  }

  private static void put(byte[] h, int off, String s) {
    byte[] b = s.getBytes(StandardCharsets.ISO_8859_1);
    System.arraycopy(b, 0, h, off, b.length);
  }

  static byte[] entry(String name, char type, String data, String link, String magic, String prefix) {
    byte[] body = data.getBytes(StandardCharsets.UTF_8);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(header(name, type, body.length, link, magic, prefix));
    out.writeBytes(body);
    out.writeBytes(new byte[(512 - body.length % 512) % 512]);
    return out.toByteArray();
  }

  static byte[] entry(String name, char type, String data) {
    return entry(name, type, data, "", "ustar\u000000", "");
  }

  static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] p : parts) {
      out.writeBytes(p);
    }
    return out.toByteArray();
  }

  static byte[] gzip(byte[] data) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
      gz.write(data);
    }
    return out.toByteArray();
  }

  static String hex(byte[] b) {
    return HexFormat.of().formatHex(b);
  }

  static Map<String, String> sha256Of(byte[] tar) throws Exception {
    return Map.of(
        Directories.TAR_DIGEST_ANNOTATION,
        "sha256:" + hex(MessageDigest.getInstance("SHA-256").digest(tar)));
  }

  @Test
  void gnuLongNamesAndLinkNamesAndTheUstarPrefix() throws Exception {
    String longName = "d/" + "x".repeat(120);
    String target = "y".repeat(130);
    String gnu = "ustar  \0";
    byte[] tar =
        concat(
            entry("d", '5', ""),
            entry("././@LongLink", 'L', longName + "\0", "", gnu, ""),
            entry(longName.substring(0, 100), '0', "long\n", "", gnu, ""),
            entry("././@LongLink", 'K', target + "\0", "", gnu, ""),
            entry("d/l", '2', "", "", gnu, ""),
            entry("f", '0', "prefixed\n", "", "ustar\u000000", "d/sub"),
            new byte[1024]);
    Outcome o = run("d", gzip(tar), sha256Of(tar));
    assertEquals(Status.Code.OK, o.code(), String.valueOf(o.error()));
    Map<String, String> tree = tree(o.root());
    assertEquals("file plain: long\n", tree.get("x".repeat(120)));
    assertEquals("file plain: prefixed\n", tree.get("sub/f"));
    assertEquals(target, Files.readSymbolicLink(o.root().resolve("l")).toString());
  }

  @Test
  void headersAloneCountAgainstTheByteLimit() throws Exception {
    ByteArrayOutputStream tar = new ByteArrayOutputStream();
    tar.writeBytes(entry("d", '5', ""));
    // 2,000 directories: a megabyte of headers, no file data.
    for (int i = 0; i < 2000; i++) {
      tar.writeBytes(entry("d/" + i, '5', ""));
    }
    tar.writeBytes(new byte[1024]);
    Outcome o =
        run(OutputDir::open, "d", gzip(tar.toByteArray()), Map.of(),
            new Directories.Limits(512 << 10, Directories.Limits.DEFAULT.maxEntries()));
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, o.code(), String.valueOf(o.error()));
    assertEquals(List.of(), names(o.out()));
  }

  @Test
  void aFileDeclaringMoreThanTheByteLimitIsRefusedBeforeItsBytes() throws Exception {
    // The header says 1 GiB; the stream ends right after it.
    byte[] tar = concat(entry("d", '5', ""), header("d/big", '0', 1L << 30, "", "ustar\u000000", ""));
    Outcome o =
        run(OutputDir::open, "d", gzip(tar), Map.of(),
            new Directories.Limits(512 << 10, Directories.Limits.DEFAULT.maxEntries()));
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, o.code(), String.valueOf(o.error()));
  }

  @Test
  void aHeaderWithAWrongChecksumIsABrokenArchive() throws Exception {
    byte[] bad = entry("d", '5', "");
    bad[0] = 'e';
    Outcome o = run("d", gzip(concat(bad, new byte[1024])), Map.of());
    assertEquals(Status.Code.DATA_LOSS, o.code(), String.valueOf(o.error()));
    assertEquals(List.of(), names(o.out()));
  }

  @Test
  void gzipMembersOneAfterAnotherAreOneStream() throws Exception {
    byte[] tar = concat(entry("d", '5', ""), entry("d/x", '0', "x"), new byte[1024]);
    byte[] archive =
        concat(gzip(Arrays.copyOfRange(tar, 0, 700)), gzip(Arrays.copyOfRange(tar, 700, tar.length)));
    Outcome o = run("d", archive, sha256Of(tar));
    assertEquals(Status.Code.OK, o.code(), String.valueOf(o.error()));
    assertEquals(Map.of("x", "file plain: x"), tree(o.root()));
  }

  @Test
  void anUnpackOverAnExistingTreeReplacesItWhole() throws Exception {
    byte[] archive = archive(find("no content digest to check"));
    for (Opener opener : List.<Opener>of(OutputDir::open, OutputDir::openByPath)) {
      Outcome first = run(opener, "d", archive, Map.of(), Directories.Limits.DEFAULT);
      assertEquals(Status.Code.OK, first.code(), String.valueOf(first.error()));
      Files.writeString(first.root().resolve("stale"), "from before\n");
      try (OutputDir out = opener.open(first.out());
          InputStream in = new ByteArrayInputStream(archive)) {
        Directories.unpack(
            in, out, "d", Map.of(Directories.UNPACK_ANNOTATION, "true"),
            Directories.Limits.DEFAULT);
      }
      assertEquals(Map.of("x", "file plain: x"), tree(first.root()));
      assertEquals(List.of("d"), names(first.out()));
    }
  }

  @Test
  void thePublicUnpackReadsAnArchiveFile() throws Exception {
    JsonObject c = cases().get(0);
    Path file = Files.write(work.resolve("layer.tar.gz"), archive(c));
    Path out = work.resolve("public-out");
    Path root = Directories.unpack(file, out, "d", digestOf(c), Directories.Limits.DEFAULT);
    assertEquals(out.resolve("d").toAbsolutePath(), root);
    assertEquals(expected(c.getAsJsonObject("expect").getAsJsonObject("tree")), tree(root));
    assertTrue(Files.exists(file), "the archive file is the caller's");
  }
}
