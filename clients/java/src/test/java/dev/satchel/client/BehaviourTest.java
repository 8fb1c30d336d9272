package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * clients/conformance/behaviour.json against a real satcheld and docker-registry
 * (clients/testenv.sh): a missing local file, the empty address and a bare socket path, and a
 * Unix-socket connect that logs nothing.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BehaviourTest extends LiveTest {
  static final JsonObject BEHAVIOUR = Conformance.load("behaviour.json");

  @Test
  void missingLocalFileIsInvalidArgumentNamingThePathWithTheNoSuchFileCause() throws Exception {
    Status.Code want =
        Status.Code.valueOf(
            BEHAVIOUR.getAsJsonObject("errors").getAsJsonObject("missing_local_file")
                .get("code").getAsString());
    Path missing = env.work.resolve("no-such-file.txt");
    Path there = Files.writeString(env.work.resolve("there.txt"), "there\n");
    Options attach = Options.builder().plainHttp(true).artifactType("application/x-t").build();
    String ref = env.registry() + "/java/missing:v1";
    List<StatusRuntimeException> errors =
        List.of(
            assertThrows(StatusRuntimeException.class, () -> client.push(ref, missing)),
            assertThrows(
                StatusRuntimeException.class,
                () -> client.push(ref, List.of(there, missing), attach)),
            assertThrows(
                StatusRuntimeException.class, () -> client.attach(ref, List.of(missing), attach)));
    for (StatusRuntimeException e : errors) {
      assertEquals(want, e.getStatus().getCode(), e.toString());
      assertTrue(e.getStatus().getDescription().contains(missing.toString()), e.toString());
      assertInstanceOf(NoSuchFileException.class, e.getCause(), e.toString());
    }
    // A FIFO is neither a regular file nor a directory (which is packed: DirectoriesTest): the
    // same answer.
    Path fifo = env.work.resolve("fifo");
    assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start().waitFor());
    StatusRuntimeException notFile =
        assertThrows(StatusRuntimeException.class, () -> client.push(ref, fifo));
    assertEquals(want, notFile.getStatus().getCode(), notFile.toString());
    assertTrue(notFile.getStatus().getDescription().contains(fifo.toString()), notFile.toString());
    assertInstanceOf(NoSuchFileException.class, notFile.getCause());
  }

  @Test
  void emptyAddressIsSatchelAddrWhenSetAndNotEmpty() {
    try (SatchelClient c = SatchelClient.open("", null, Map.of("SATCHEL_ADDR", env.addr()))) {
      assertEquals(client.serverInfo(), c.serverInfo());
    }
  }

  @Test
  void emptyAddressWithoutSatchelAddrIsTheDefaultSocket() throws Exception {
    // A second real daemon on $XDG_RUNTIME_DIR/satchel/satcheld.sock, the default socket.
    String addr = env.startDaemon("xdg/satchel", "");
    Path runtime = env.work.resolve("xdg");
    assertEquals("unix://" + runtime.resolve("satchel/satcheld.sock"), addr);
    for (Map<String, String> vars :
        List.of(
            Map.of("XDG_RUNTIME_DIR", runtime.toString()),
            Map.of("XDG_RUNTIME_DIR", runtime.toString(), "SATCHEL_ADDR", ""))) {
      try (SatchelClient c = SatchelClient.open("", null, vars)) {
        assertEquals(client.serverInfo(), c.serverInfo(), vars.toString());
      }
    }
    assertEquals(
        "unix:///run/user/7/satchel/satcheld.sock",
        Channels.defaultAddress(Map.of("XDG_RUNTIME_DIR", "/run/user/7")));
    assertTrue(
        Channels.defaultAddress(Map.of("XDG_RUNTIME_DIR", "", "TMPDIR", "/var/tmp"))
            .matches("unix:///var/tmp/satchel-[0-9]+/satcheld\\.sock"));
  }

  @Test
  void bareAbsolutePathIsAUnixSocket() {
    assertTrue(BEHAVIOUR.getAsJsonObject("addresses").get("bare_path_is_unix_socket").getAsBoolean());
    String path = env.addr().substring("unix://".length());
    assertTrue(path.startsWith("/"), path);
    try (SatchelClient c = SatchelClient.connect(path)) {
      assertEquals(client.serverInfo(), c.serverInfo());
    }
  }

  @Test
  void unixSocketConnectLogsNoWarning() {
    List<LogRecord> warnings = Collections.synchronizedList(new ArrayList<>());
    Handler capture =
        new Handler() {
          @Override
          public void publish(LogRecord r) {
            if (r.getLevel().intValue() >= Level.WARNING.intValue()) {
              warnings.add(r);
            }
          }

          @Override
          public void flush() {}

          @Override
          public void close() {}
        };
    // netty (shaded in grpc-netty-shaded) logs through java.util.logging; the root logger sees all.
    Logger root = Logger.getLogger("");
    root.addHandler(capture);
    try (SatchelClient c = SatchelClient.connect(env.addr())) {
      c.serverInfo();
    } finally {
      root.removeHandler(capture);
    }
    List<String> seen = new ArrayList<>();
    for (LogRecord r : warnings) {
      seen.add(r.getLoggerName() + ": " + r.getMessage());
    }
    assertEquals(List.of(), seen, "a Unix-socket connect and call log no warning");
  }
}
