package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.satchel.v1.SatchelServiceGrpc;
import dev.satchel.v1.ServerInfoRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a channel from {@link Channels#open} announces of its receive side when it connects: its
 * HTTP/2 SETTINGS and its connection window, read by a bare HTTP/2 peer on a Unix socket (no
 * daemon).
 */
class Http2SettingsTest {
  private static final byte[] PREFACE =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
  private static final int HEADERS = 0x1;
  private static final int SETTINGS = 0x4;
  private static final int WINDOW_UPDATE = 0x8;
  private static final int SETTINGS_INITIAL_WINDOW_SIZE = 0x4;

  /** What the client announced before its first call. */
  record Announced(Map<Integer, Long> settings, long connectionWindow) {}

  @Test
  void theChannelAnnouncesALargeWindowPerCallAndPerConnection(@TempDir Path dir)
      throws Exception {
    Path sock = dir.resolve("peer.sock");
    try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
      server.bind(UnixDomainSocketAddress.of(sock));
      CompletableFuture<Announced> announced =
          CompletableFuture.supplyAsync(
              () -> {
                try (SocketChannel peer = server.accept()) {
                  return readAnnounced(peer);
                } catch (IOException e) {
                  throw new RuntimeException(e);
                }
              });
      ManagedChannel channel = Channels.open("unix://" + sock, SatchelClient.MAX_MESSAGE_SIZE);
      try {
        // Fails when the peer hangs up; only what was announced matters.
        assertThrows(
            StatusRuntimeException.class,
            () ->
                SatchelServiceGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(5, TimeUnit.SECONDS)
                    .serverInfo(ServerInfoRequest.getDefaultInstance()));
        Announced seen = announced.get(10, TimeUnit.SECONDS);
        assertEquals(
            Long.valueOf(Channels.FLOW_CONTROL_WINDOW),
            seen.settings().get(SETTINGS_INITIAL_WINDOW_SIZE),
            "SETTINGS_INITIAL_WINDOW_SIZE");
        assertEquals(Channels.FLOW_CONTROL_WINDOW, seen.connectionWindow(), "connection window");
      } finally {
        channel.shutdownNow();
      }
    } finally {
      Files.deleteIfExists(sock);
    }
  }

  /**
   * Reads the client's frames until its first HEADERS (the call), answering its SETTINGS, and
   * returns what it announced.
   */
  private static Announced readAnnounced(SocketChannel peer) throws IOException {
    DataInputStream in = new DataInputStream(java.nio.channels.Channels.newInputStream(peer));
    OutputStream out = java.nio.channels.Channels.newOutputStream(peer);
    out.write(frame(SETTINGS, 0));
    assertArrayEquals(PREFACE, in.readNBytes(PREFACE.length), "HTTP/2 client preface");
    Map<Integer, Long> settings = new HashMap<>();
    long window = 65535;
    while (true) {
      int length = (in.readUnsignedByte() << 16) | in.readUnsignedShort();
      int type = in.readUnsignedByte();
      int flags = in.readUnsignedByte();
      int stream = in.readInt() & 0x7fffffff;
      byte[] payload = in.readNBytes(length);
      DataInputStream p = new DataInputStream(new ByteArrayInputStream(payload));
      if (type == SETTINGS && (flags & 0x1) == 0) {
        for (int i = 0; i + 6 <= length; i += 6) {
          settings.put(p.readUnsignedShort(), Integer.toUnsignedLong(p.readInt()));
        }
        out.write(frame(SETTINGS, 0x1));
      } else if (type == WINDOW_UPDATE && stream == 0) {
        window += p.readInt() & 0x7fffffff;
      } else if (type == HEADERS) {
        return new Announced(settings, window);
      }
    }
  }

  /** An empty frame of {@code type} with {@code flags} on stream 0. */
  private static byte[] frame(int type, int flags) {
    return new byte[] {0, 0, 0, (byte) type, (byte) flags, 0, 0, 0, 0};
  }
}
