package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.satchel.v1.PushRequest;
import dev.satchel.v1.PushResult;
import dev.satchel.v1.SatchelServiceGrpc;
import dev.satchel.v1.ServerInfoResponse;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The daemon's ServerInfo against a real satcheld (clients/testenv.sh, default config) and a second
 * one whose config lowers upload_monolithic_max: the answer equals clients/conformance/limits.json,
 * is asked once per client, and sets push's chunk size and automatic hash-first threshold.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ServerInfoTest extends LiveTest {
  @Test
  void serverInfoEqualsTheConformanceDefaults() {
    ServerInfoResponse info = client.serverInfo();
    assertEquals(Conformance.serverInfoDefault("max_chunk_bytes"), info.getMaxChunkBytes());
    assertEquals(Conformance.serverInfoDefault("max_message_bytes"), info.getMaxMessageBytes());
    assertEquals(Conformance.serverInfoDefault("hash_first_below"), info.getHashFirstBelow());
    assertFalse(info.getVersion().isEmpty(), "the daemon names its version");
    // The fallback constants are the same defaults.
    ServerInfoResponse fallback = SatchelClient.SERVER_INFO_DEFAULTS;
    assertEquals(info.getMaxChunkBytes(), fallback.getMaxChunkBytes());
    assertEquals(info.getMaxMessageBytes(), fallback.getMaxMessageBytes());
    assertEquals(info.getHashFirstBelow(), fallback.getHashFirstBelow());
  }

  @Test
  void receiveLimitIsTheSharedOneAndCoversTheDaemonsLargestMessage() {
    assertEquals(Conformance.clientReceiveLimit(), SatchelClient.MAX_MESSAGE_SIZE);
    assertTrue(
        SatchelClient.MAX_MESSAGE_SIZE >= Integer.toUnsignedLong(client.serverInfo().getMaxMessageBytes()));
  }

  @Test
  void serverInfoIsAskedOncePerClientFromAnyNumberOfThreads() throws Exception {
    FakeDaemonAnswers counting = new FakeDaemonAnswers(UnaryOperator.identity());
    try (InterceptedClient c = new InterceptedClient(env.addr(), counting)) {
      ExecutorService pool = Executors.newFixedThreadPool(4);
      List<Future<ServerInfoResponse>> answers = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        answers.add(pool.submit(c.client::serverInfo));
      }
      for (Future<ServerInfoResponse> a : answers) {
        assertEquals(client.serverInfo(), a.get());
      }
      pool.shutdown();
      Path file = Files.writeString(env.work.resolve("once.txt"), "once\n");
      c.client.push(env.registry() + "/java/info:once", List.of(file), registry);
      assertEquals(1, counting.serverInfoCalls.get(), "one ServerInfo call per client");
    }
  }

  @Test
  void unimplementedServerInfoFallsBackToTheDefaults() throws Exception {
    FakeDaemonAnswers oldDaemon = new FakeDaemonAnswers(null);
    try (InterceptedClient c = new InterceptedClient(env.addr(), oldDaemon)) {
      ServerInfoResponse info = c.client.serverInfo();
      assertEquals(Conformance.serverInfoDefault("max_chunk_bytes"), info.getMaxChunkBytes());
      assertEquals(Conformance.serverInfoDefault("max_message_bytes"), info.getMaxMessageBytes());
      assertEquals(Conformance.serverInfoDefault("hash_first_below"), info.getHashFirstBelow());
      Path file = Files.writeString(env.work.resolve("old.txt"), "an old daemon\n");
      PushResult pushed = c.client.push(env.registry() + "/java/info:old", List.of(file), registry);
      assertEquals(1, pushed.getLayersCount(), "push works on the defaults");
    }
  }

  @Test
  void pushChunksFollowTheDaemonsMaxChunkBytes() throws Exception {
    // A real daemon always answers 1 MiB; the test-only rewrite says 256 KiB, which it accepts.
    FakeDaemonAnswers small =
        new FakeDaemonAnswers(i -> i.toBuilder().setMaxChunkBytes(256 << 10).build());
    try (InterceptedClient c = new InterceptedClient(env.addr(), small)) {
      Path file = env.work.resolve("chunks.bin");
      Files.write(file, new byte[(1 << 20) + 1]);
      c.client.push(env.registry() + "/java/info:chunks", List.of(file), registry);
      assertEquals(List.of(256 << 10, 256 << 10, 256 << 10, 256 << 10, 1), small.chunkSizes);
    }
  }

  @Test
  void hashFirstFollowsTheDaemonsAnswer() throws Exception {
    String addr = env.startDaemon("small-monolithic", "upload_monolithic_max = 4096\n");
    try (SatchelClient small = SatchelClient.connect(addr)) {
      assertEquals(4096, small.serverInfo().getHashFirstBelow());
      String repo = env.registry() + "/java/hash-first";
      Path below = env.work.resolve("below.bin");
      Files.write(below, new byte[4095]);
      Path at = env.work.resolve("at.bin");
      Files.write(at, new byte[4096]);

      small.push(repo + ":below-1", List.of(below), registry);
      assertEquals(1, small.push(repo + ":below-2", List.of(below), registry).getBlobsSkipped(),
          "a file below the daemon's hash_first_below is hashed, so its blob is skipped");
      small.push(repo + ":at-1", List.of(at), registry);
      assertEquals(0, small.push(repo + ":at-2", List.of(at), registry).getBlobsSkipped(),
          "a file at or above the daemon's hash_first_below goes unhashed and is uploaded");
      Options always = Options.builder().plainHttp(true).hashFirst(true).build();
      assertEquals(1, small.push(repo + ":at-3", List.of(at), always).getBlobsSkipped());
    }
  }

  /** A client on its own channel to {@code addr}, through an interceptor. */
  private static final class InterceptedClient implements AutoCloseable {
    final ManagedChannel channel;
    final SatchelClient client;

    InterceptedClient(String addr, ClientInterceptor interceptor) {
      channel = Channels.open(addr, SatchelClient.MAX_MESSAGE_SIZE);
      client = new SatchelClient(ClientInterceptors.intercept(channel, interceptor));
    }

    @Override
    public void close() {
      client.close();
      channel.shutdownNow();
    }
  }

  /**
   * TEST-ONLY FAKE of daemon answers a real satcheld cannot be made to give: in front of a real
   * daemon, it counts ServerInfo calls and rewrites the answer with {@code rewrite}, or with a null
   * rewrite answers UNIMPLEMENTED itself (a daemon older than ServerInfo); it records the size of
   * every Push chunk sent. Every other call goes to the real daemon unchanged.
   */
  static final class FakeDaemonAnswers implements ClientInterceptor {
    final AtomicInteger serverInfoCalls = new AtomicInteger();
    final List<Integer> chunkSizes = Collections.synchronizedList(new ArrayList<>());
    private final UnaryOperator<ServerInfoResponse> rewrite;

    FakeDaemonAnswers(UnaryOperator<ServerInfoResponse> rewrite) {
      this.rewrite = rewrite;
    }

    @Override
    public <Q, A> ClientCall<Q, A> interceptCall(
        MethodDescriptor<Q, A> method, CallOptions options, Channel next) {
      if (method.equals(SatchelServiceGrpc.getServerInfoMethod())) {
        serverInfoCalls.incrementAndGet();
        return rewrite == null ? unimplemented() : rewritten(next.newCall(method, options));
      }
      return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
        @Override
        public void sendMessage(Q message) {
          if (message instanceof PushRequest p && p.hasChunk()) {
            chunkSizes.add(p.getChunk().getData().size());
          }
          super.sendMessage(message);
        }
      };
    }

    @SuppressWarnings("unchecked")
    private <Q, A> ClientCall<Q, A> rewritten(ClientCall<Q, A> call) {
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void start(Listener<A> listener, Metadata headers) {
          super.start(
              new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                @Override
                public void onMessage(A message) {
                  super.onMessage((A) rewrite.apply((ServerInfoResponse) message));
                }
              },
              headers);
        }
      };
    }

    private static <Q, A> ClientCall<Q, A> unimplemented() {
      return new ClientCall<>() {
        @Override
        public void start(Listener<A> listener, Metadata headers) {
          listener.onClose(
              Status.UNIMPLEMENTED.withDescription("unknown method ServerInfo"), new Metadata());
        }

        @Override
        public void request(int n) {}

        @Override
        public void cancel(String message, Throwable cause) {}

        @Override
        public void halfClose() {}

        @Override
        public void sendMessage(Q message) {}
      };
    }
  }
}
