package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The live environment of clients/testenv.sh (a real docker-registry and satcheld) for one test
 * class, with {@link #client}, a client of that daemon, plus {@link #startDaemon}, a second real
 * satcheld with a config file of the test's own. {@link #close} closes and stops them all.
 */
final class TestEnv implements AutoCloseable {
  final Path work;
  final Map<String, String> vars;
  private final Path envDir;
  private final List<Process> daemons = new ArrayList<>();
  private SatchelClient client;

  private TestEnv(Path work) throws IOException, InterruptedException {
    this.work = work;
    this.envDir = work.resolve("env");
    this.vars = parse(run("up"));
  }

  static TestEnv up(String prefix) throws IOException, InterruptedException {
    return new TestEnv(Files.createTempDirectory(prefix));
  }

  String addr() {
    return vars.get("SATCHEL_ADDR");
  }

  String registry() {
    return vars.get("SATCHEL_REGISTRY");
  }

  /** The client of the testenv daemon ({@link #addr}), connected on first use. */
  SatchelClient client() {
    if (client == null) {
      client = SatchelClient.connect(addr());
    }
    return client;
  }

  /**
   * Starts another satcheld, on a Unix socket under work/NAME, with the TOML {@code config} and
   * nothing from the caller's environment, and returns its address once its socket exists. The
   * binary is the one testenv.sh picks ($SATCHELD, else the workspace's newest build).
   */
  String startDaemon(String name, String config) throws IOException, InterruptedException {
    Path dir = Files.createDirectories(work.resolve(name));
    Path configFile = Files.writeString(dir.resolve("satcheld.toml"), config);
    Path socket = dir.resolve("satcheld.sock");
    ProcessBuilder pb =
        new ProcessBuilder(
                satcheld().toString(), "--listen", "unix://" + socket,
                "--config", configFile.toString(),
                "--docker-config", dir.resolve("docker/config.json").toString(),
                "--cache-dir", dir.resolve("cache").toString(),
                "--state-dir", dir.resolve("state").toString())
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve("satcheld.log").toFile());
    for (String v :
        List.of("SATCHELD_CONFIG", "SATCHELD_DOCKER_CONFIG", "SATCHELD_AUTH_TOKEN_FILE",
            "SATCHELD_LISTEN", "SATCHELD_CACHE_DIR")) {
      pb.environment().remove(v);
    }
    pb.environment().put("NO_PROXY", "127.0.0.1,localhost");
    pb.environment().put("no_proxy", "127.0.0.1,localhost");
    Process daemon = pb.start();
    daemons.add(daemon);
    // Readiness, not a timed assert: up to 30 s for the socket, as testenv.sh waits.
    for (int i = 0; i < 300 && !Files.exists(socket); i++) {
      assertTrue(daemon.isAlive(), "satcheld exited: " + Files.readString(dir.resolve("satcheld.log")));
      Thread.sleep(100);
    }
    assertTrue(Files.exists(socket), "satcheld made its socket");
    return "unix://" + socket;
  }

  private static Path satcheld() {
    Path root = Path.of(System.getProperty("satchel.testenv", "../testenv.sh"))
        .toAbsolutePath().normalize().getParent().getParent();
    Path best = null;
    String given = System.getenv("SATCHELD");
    for (Path c :
        List.of(
            Path.of(given == null || given.isEmpty() ? "/nonexistent" : given),
            root.resolve("target/debug/satcheld"),
            root.resolve("target/release/satcheld"))) {
      if (Files.isExecutable(c) && (best == null || newer(c, best))) {
        best = c;
      }
    }
    assertNotNull(best, "a satcheld build under " + root + "/target or $SATCHELD");
    return best;
  }

  private static boolean newer(Path a, Path b) {
    try {
      return Files.getLastModifiedTime(a).compareTo(Files.getLastModifiedTime(b)) > 0;
    } catch (IOException e) {
      return false;
    }
  }

  @Override
  public void close() throws IOException, InterruptedException {
    if (client != null) {
      client.close();
    }
    for (Process daemon : daemons) {
      daemon.destroy();
      daemon.waitFor(10, TimeUnit.SECONDS);
      daemon.destroyForcibly();
    }
    run("down");
    try (var paths = Files.walk(work)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  private String run(String command) throws IOException, InterruptedException {
    String script = System.getProperty("satchel.testenv", "../testenv.sh");
    Process p =
        new ProcessBuilder("bash", script, command, envDir.toString())
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "testenv.sh " + command + " finished");
    assertEquals(0, p.exitValue(), "testenv.sh " + command + " failed: " + out);
    return out;
  }

  private static Map<String, String> parse(String out) {
    Map<String, String> env = new HashMap<>();
    for (String line : out.split("\n")) {
      int eq = line.indexOf('=');
      if (eq > 0) {
        env.put(line.substring(0, eq).trim(), line.substring(eq + 1).trim());
      }
    }
    assertNotNull(env.get("SATCHEL_ADDR"), "testenv printed SATCHEL_ADDR: " + out);
    assertNotNull(env.get("SATCHEL_REGISTRY"), "testenv printed SATCHEL_REGISTRY: " + out);
    return env;
  }
}
