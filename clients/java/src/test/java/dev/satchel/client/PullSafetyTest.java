package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.TestInstance;

/**
 * Pulls through a real satcheld and docker-registry (clients/testenv.sh) into directories where
 * links were planted (every planted_links vector of clients/conformance/titles.json), and calls
 * that cannot finish before their deadline, against a test-only silent registry.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PullSafetyTest extends LiveTest {
  ServerSocket silent;
  final List<Socket> silentConnections = Collections.synchronizedList(new ArrayList<>());

  @BeforeAll
  void up() throws Exception {
    silent = silentRegistry();
  }

  @AfterAll
  void down() throws Exception {
    if (silent != null) {
      silent.close();
      for (Socket s : silentConnections) {
        s.close();
      }
    }
  }

  @TestFactory
  Stream<DynamicTest> pullNeverFollowsAPlantedLink() {
    List<DynamicTest> tests = new ArrayList<>();
    List<JsonObject> vectors = Vectors.list("planted_links");
    for (int i = 0; i < vectors.size(); i++) {
      JsonObject v = vectors.get(i);
      int n = i;
      tests.add(dynamicTest(Vectors.name(i, Vectors.str(v, "name")), () -> planted(n, v)));
    }
    return tests.stream();
  }

  private void planted(int i, JsonObject v) throws Exception {
    String title = Vectors.str(v, "title");
    String data = "the layer titled " + title + "\n";
    Path file = Files.writeString(Files.createTempFile(work, "layer", ""), data);
    String ref = env.vars.get("SATCHEL_REGISTRY") + "/java/planted:v" + i;
    client.push(
        ref, List.of(file), Options.builder().plainHttp(true).titles(List.of(title)).build());

    Path base = Files.createTempDirectory(work, "planted");
    Path out = Files.createDirectory(base.resolve("out"));
    Path outside = Files.createDirectory(base.resolve("outside"));
    Files.writeString(outside.resolve("victim"), "the victim\n");
    for (String d : Vectors.strings(v.getAsJsonArray("dirs"))) {
      Files.createDirectories(out.resolve(d));
    }
    if (v.has("links")) {
      for (JsonElement e : v.getAsJsonArray("links")) {
        JsonObject link = e.getAsJsonObject();
        String to = Vectors.str(link, "to");
        if (to.startsWith("OUTSIDE")) {
          to = outside + to.substring("OUTSIDE".length());
        }
        Files.createSymbolicLink(out.resolve(Vectors.str(link, "path")), Path.of(to));
      }
    }
    Map<String, String> outsideBefore = tree(outside);
    Map<String, String> want = tree(out);
    Options options = Options.builder().plainHttp(true).outputDir(out).build();

    switch (Vectors.str(v, "expect")) {
      case "replaced" -> {
        client.pull(ref, options);
        want.put(title, "file: " + data);
      }
      case "refused" -> {
        StatusRuntimeException e =
            assertThrows(StatusRuntimeException.class, () -> client.pull(ref, options));
        assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode(), e.toString());
      }
      default -> fail("unknown expectation " + v.get("expect"));
    }
    assertEquals(outsideBefore, tree(outside), "nothing under OUTSIDE changed");
    assertEquals(want, tree(out), "the output dir holds what was planted (and the pulled file)");
  }

  @Test
  void pullRefusesADirectoryAtAFileName() throws Exception {
    Path file = Files.writeString(work.resolve("f.txt"), "f\n");
    String ref = env.vars.get("SATCHEL_REGISTRY") + "/java/dir-at-name:v1";
    client.push(
        ref, List.of(file), Options.builder().plainHttp(true).titles(List.of("d/f.txt")).build());
    Path out = Files.createDirectories(work.resolve("dir-at-name"));
    Files.createDirectories(out.resolve("d/f.txt/inner"));
    Map<String, String> before = tree(out);
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> client.pull(ref, Options.builder().plainHttp(true).outputDir(out).build()));
    assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode(), e.toString());
    assertEquals(before, tree(out));
  }

  @Test
  void pushRefusesBadTitles() throws Exception {
    Path file = Files.writeString(work.resolve("g.txt"), "g\n");
    String ref = env.vars.get("SATCHEL_REGISTRY") + "/java/badtitle:v1";
    for (List<String> titles :
        List.of(
            List.of("../g.txt"),
            List.of("a\u001b[31m"),
            List.of("a".repeat(256)),
            List.of("a", "b"))) {
      Options options = Options.builder().plainHttp(true).titles(titles).build();
      StatusRuntimeException e =
          assertThrows(
              StatusRuntimeException.class, () -> client.push(ref, List.of(file), options));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), titles.toString());
    }
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.resolve(ref, registry));
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
  }

  interface Call {
    void run(Path out) throws Exception;
  }

  @TestFactory
  Stream<DynamicTest> callsPastTheirDeadlineFailWithDeadlineExceeded() throws Exception {
    String ref = "127.0.0.1:" + silent.getLocalPort() + "/java/hang:v1";
    Duration two = Duration.ofSeconds(2);
    SatchelClient withDefault = SatchelClient.connect(env.vars.get("SATCHEL_ADDR"), two);
    Options perCall = Options.builder().plainHttp(true).deadline(two).build();
    Path small = Files.writeString(work.resolve("hang.txt"), "h\n");
    Map<String, Call> calls = new TreeMap<>();
    calls.put("pull, per-call deadline", out -> client.pull(ref, withOut(perCall, out)));
    calls.put(
        "pull, client default deadline", out -> withDefault.pull(ref, withOut(registry, out)));
    calls.put("resolve, client default deadline", out -> withDefault.resolve(ref, registry));
    calls.put("discover, per-call deadline", out -> client.discover(ref, perCall));
    calls.put("push, per-call deadline", out -> client.push(ref, List.of(small), perCall));
    List<DynamicTest> tests = new ArrayList<>();
    calls.forEach(
        (name, call) ->
            tests.add(
                dynamicTest(
                    name,
                    () -> {
                      Path out = work.resolve("deadline-" + tests.size() + "-" + System.nanoTime());
                      StatusRuntimeException e =
                          assertThrows(StatusRuntimeException.class, () -> call.run(out));
                      assertEquals(
                          Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode(), e.toString());
                      assertEquals(Map.of(), Files.exists(out) ? withoutRoot(tree(out)) : Map.of());
                    })));
    tests.add(dynamicTest("close the client with a default deadline", withDefault::close));
    return tests.stream();
  }

  private static Options withOut(Options o, Path out) {
    Options.Builder b = Options.builder().plainHttp(o.plainHttp()).outputDir(out);
    o.deadline().ifPresent(b::deadline);
    return b.build();
  }

  private static Map<String, String> withoutRoot(Map<String, String> tree) {
    tree.remove("");
    return tree;
  }

  /** A test-only hostile registry: accepts connections, reads what comes, never answers. */
  private ServerSocket silentRegistry() throws IOException {
    ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread acceptor =
        new Thread(
            () -> {
              while (!server.isClosed()) {
                try {
                  Socket s = server.accept();
                  silentConnections.add(s);
                  Thread reader = new Thread(() -> drain(s));
                  reader.setDaemon(true);
                  reader.start();
                } catch (IOException closed) {
                  return;
                }
              }
            });
    acceptor.setDaemon(true);
    acceptor.start();
    return server;
  }

  private static void drain(Socket s) {
    try (InputStream in = s.getInputStream()) {
      in.transferTo(java.io.OutputStream.nullOutputStream());
    } catch (IOException closed) {
      // The test is over.
    }
  }

  /** Everything under root, links not followed: "dir", "link -> TARGET" or "file: CONTENT". */
  static Map<String, String> tree(Path root) throws IOException {
    Map<String, String> out = new TreeMap<>();
    try (Stream<Path> paths = Files.walk(root)) {
      for (Path p : paths.toList()) {
        String rel = root.relativize(p).toString();
        BasicFileAttributes a =
            Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        if (a.isSymbolicLink()) {
          out.put(rel, "link -> " + Files.readSymbolicLink(p));
        } else if (a.isDirectory()) {
          out.put(rel, "dir");
        } else {
          out.put(rel, "file: " + Files.readString(p));
        }
      }
    }
    return out;
  }
}
