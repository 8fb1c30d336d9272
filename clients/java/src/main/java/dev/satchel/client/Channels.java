package dev.satchel.client;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.TlsChannelCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * How {@link SatchelClient#connect(String)} reads an address and opens a channel to it: the
 * meaning every client shares (clients/conformance/behaviour.json).
 */
final class Channels {
  private Channels() {}

  /**
   * The address to dial for {@code address}: an empty one means {@code $SATCHEL_ADDR} when that is
   * set and not empty, else {@link #defaultAddress}; a bare absolute path is a Unix socket ({@code
   * unix://} + path). Anything else is returned as it is.
   */
  static String resolve(String address, Map<String, String> env) {
    String a = address;
    if (a == null || a.isEmpty()) {
      a = env.getOrDefault("SATCHEL_ADDR", "");
    }
    if (a.isEmpty()) {
      return defaultAddress(env);
    }
    return a.startsWith("/") ? "unix://" + a : a;
  }

  /**
   * The daemon's default socket, as satcheld computes it: {@code
   * unix://$XDG_RUNTIME_DIR/satchel/satcheld.sock} when XDG_RUNTIME_DIR is set and not empty, else
   * {@code unix://$TMPDIR/satchel-<uid>/satcheld.sock} ({@code /tmp} without TMPDIR; the uid is the
   * owner of /proc/self, the process's effective user).
   */
  static String defaultAddress(Map<String, String> env) {
    String runtime = env.getOrDefault("XDG_RUNTIME_DIR", "");
    if (!runtime.isEmpty()) {
      return "unix://" + Path.of(runtime, "satchel", "satcheld.sock");
    }
    String tmp = env.getOrDefault("TMPDIR", "");
    return "unix://" + Path.of(tmp.isEmpty() ? "/tmp" : tmp, "satchel-" + uid(), "satcheld.sock");
  }

  private static int uid() {
    try {
      return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
      return 0;
    }
  }

  /**
   * The HTTP/2 flow-control window the client announces, per call and for the connection: how many
   * bytes of a pull the daemon may send before the client acknowledges them. grpc-java's default
   * is 1 MiB, grown by BDP pings up to 8 MiB; a local socket needs no probing. grpc-java has no
   * setting for the largest frame it accepts, which stays HTTP/2's 16 KiB.
   */
  static final int FLOW_CONTROL_WINDOW = 8 << 20;

  /**
   * A channel to a resolved address: {@code unix:///path/to.sock}, {@code http://host:port}, {@code
   * https://host:port} (TLS with the system's trust store) or a bare {@code host:port} (plain
   * text), accepting messages up to {@code receiveLimit} bytes.
   */
  static ManagedChannel open(String address, int receiveLimit) {
    ChannelCredentials credentials = InsecureChannelCredentials.create();
    String target = address;
    if (address.startsWith("http://")) {
      target = stripSlash(address.substring("http://".length()));
    } else if (address.startsWith("https://")) {
      target = stripSlash(address.substring("https://".length()));
      credentials = TlsChannelCredentials.create();
    }
    ManagedChannelBuilder<?> builder =
        Grpc.newChannelBuilder(target, credentials).maxInboundMessageSize(receiveLimit);
    if (builder instanceof NettyChannelBuilder netty) {
      // Fixed, per call and for the connection together; BDP probing off.
      netty.flowControlWindow(FLOW_CONTROL_WINDOW);
    }
    if (target.startsWith("unix:")) {
      // grpc-java would send the socket path as :authority, which the daemon's HTTP/2 stack
      // rejects (PROTOCOL_ERROR); any valid host name will do.
      builder.overrideAuthority("localhost");
      withoutKeepAliveOption(builder);
    }
    return builder.build();
  }

  /**
   * grpc-java's NettyClientTransport sets SO_KEEPALIVE on every channel it opens, and netty's
   * epoll and kqueue domain-socket channels do not know the option, so each connection logged
   * "Unknown channel option 'SO_KEEPALIVE'" as a warning. Channel options the builder is given are
   * applied after that one, and netty's Bootstrap removes an option set to null, so this takes it
   * off again for Unix sockets (TCP channels keep it). gRPC's own keepalive pings are unaffected.
   */
  static void withoutKeepAliveOption(ManagedChannelBuilder<?> builder) {
    if (builder instanceof NettyChannelBuilder netty) {
      netty.withOption(ChannelOption.SO_KEEPALIVE, null);
    }
  }

  private static String stripSlash(String s) {
    return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
  }
}
