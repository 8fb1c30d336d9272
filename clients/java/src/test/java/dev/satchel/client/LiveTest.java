package dev.satchel.client;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;

/**
 * A test class against the live environment of clients/testenv.sh: {@link #env} comes up before
 * the class's tests and is closed after them (a subclass's own {@code @BeforeAll} runs after this
 * one's, its {@code @AfterAll} before). {@link #client} is a client of its daemon, {@link #work}
 * its scratch directory, {@link #registry} the options for its plain-HTTP registry.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class LiveTest {
  final Options registry = Options.builder().plainHttp(true).build();
  TestEnv env;
  Path work;
  SatchelClient client;

  @BeforeAll
  void upLiveEnv() throws Exception {
    env = TestEnv.up("satchel-java-" + getClass().getSimpleName() + "-");
    work = env.work;
    client = env.client();
  }

  @AfterAll
  void downLiveEnv() throws Exception {
    if (env != null) {
      env.close();
    }
  }
}
