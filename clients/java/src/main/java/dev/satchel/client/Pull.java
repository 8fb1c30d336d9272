package dev.satchel.client;

import com.google.protobuf.ByteString;
import dev.satchel.v1.Descriptor;
import dev.satchel.v1.FileHeader;
import dev.satchel.v1.PullResponse;
import dev.satchel.v1.PulledManifest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * One pull's client side: checks every title of the manifest before the first byte is written,
 * writes only files the manifest names, each through {@link OutputDir} to a partial file renamed
 * only when the daemon's FileDone digest, the local digest and the byte count match the layer. A
 * directory layer ({@link Directories#isDirectory}) is received the same way into a scratch file
 * beside its final name, then unpacked ({@link Directories#unpack}) and the scratch file removed.
 */
final class Pull implements AutoCloseable {
  private final Path dir;
  private final Options options;
  private PulledManifest manifest;
  /** The manifest's titles not pulled yet; null before the manifest arrived. */
  private Set<String> titles;
  private OutputDir out;
  private PendingFile current;
  private final List<Path> written = new ArrayList<>();

  Pull(Options options) {
    this.dir = options.outputDir();
    this.options = options;
  }

  /** Reads the whole stream; on any failure the file being written is removed. */
  PullResult run(Iterator<PullResponse> stream) throws IOException {
    while (stream.hasNext()) {
      handle(stream.next());
    }
    if (current != null) {
      throw protocol("the stream ended in the middle of a file");
    }
    if (manifest == null) {
      throw protocol("the stream carried no manifest");
    }
    return new PullResult(manifest, written);
  }

  private void handle(PullResponse message) throws IOException {
    switch (message.getPayloadCase()) {
      case MANIFEST -> {
        if (manifest != null) {
          throw protocol("a second manifest arrived");
        }
        // Keys were sent: a daemon older than Verify ignores them.
        if (!options.verifyKeys().isEmpty() && !message.getManifest().hasSignature()) {
          throw Status.FAILED_PRECONDITION
              .withDescription(
                  "the daemon did not verify the artifact although keys were given (a satcheld"
                      + " older than Verify?); nothing was written")
              .asRuntimeException();
        }
        List<String> all = Titles.ofManifest(message.getManifest().getContent());
        Titles.checkAll(all);
        titles = new HashSet<>(all);
        manifest = message.getManifest();
      }
      case FILE -> {
        if (current != null) {
          throw protocol("a file header arrived before the previous file was done");
        }
        current = start(message.getFile());
      }
      case CHUNK -> {
        if (current == null) {
          throw protocol("a chunk arrived outside a file");
        }
        current.write(message.getChunk());
      }
      case DONE -> {
        if (current == null) {
          throw protocol("a file end arrived outside a file");
        }
        PendingFile file = current;
        current = null;
        written.add(file.commit(message.getDone().getDigest()));
      }
      case PROGRESS -> options.progress().accept(message.getProgress());
      case PAYLOAD_NOT_SET -> {}
    }
  }

  private PendingFile start(FileHeader header) throws IOException {
    if (titles == null) {
      throw protocol("a file arrived before the manifest");
    }
    // The output directory is made when the first file starts (clients/conformance/README.md).
    if (out == null) {
      out = OutputDir.open(dir);
    }
    if (!titles.remove(header.getName())) {
      // The manifest's titles were all checked; a header for another name (or the same twice) is
      // the daemon breaking the protocol, and nothing is written for it.
      throw protocol(
          "refusing file "
              + Titles.shown(header.getName())
              + ": not a title of the manifest, or sent twice");
    }
    return PendingFile.create(out, header);
  }

  @Override
  public void close() {
    if (current != null) {
      current.discard();
      current = null;
    }
    if (out != null) {
      OutputDir.closeQuietly(out);
    }
  }

  static StatusRuntimeException protocol(String what) {
    return Status.INTERNAL.withDescription("pull: " + what).asRuntimeException();
  }

  /**
   * A pulled file on its way to disk: a partial file beside its final name, renamed only when the
   * daemon's FileDone digest, the digest of the bytes written and their count all match the layer
   * descriptor.
   */
  static final class PendingFile {
    private final OutputDir.Slot slot;
    private final MessageDigest hash;
    private final String algorithm;
    private final Descriptor layer;
    /** The title, and for a directory layer the output directory to unpack it in (else null). */
    private final String name;
    private final OutputDir unpackInto;
    private long size;
    private boolean closed;

    private PendingFile(
        OutputDir.Slot slot,
        MessageDigest hash,
        String algorithm,
        Descriptor layer,
        String name,
        OutputDir unpackInto) {
      this.slot = slot;
      this.hash = hash;
      this.algorithm = algorithm;
      this.layer = layer;
      this.name = name;
      this.unpackInto = unpackInto;
    }

    /** Checks the name and digest algorithm, then walks to the file's directory and creates it. */
    static PendingFile create(OutputDir out, FileHeader header) throws IOException {
      Titles.check(header.getName());
      Descriptor layer = header.getLayer();
      String algorithm = layer.getDigest().split(":", 2)[0];
      MessageDigest hash;
      try {
        hash =
            switch (algorithm) {
              case "sha256" -> MessageDigest.getInstance("SHA-256");
              case "sha512" -> MessageDigest.getInstance("SHA-512");
              default -> throw Status.FAILED_PRECONDITION
                  .withDescription(
                      Titles.shown(header.getName())
                          + ": unsupported digest \""
                          + layer.getDigest()
                          + "\"")
                  .asRuntimeException();
            };
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException(e);
      }
      boolean directory = Directories.isDirectory(layer);
      OutputDir.Slot slot = out.slot(header.getName(), -1, directory);
      return new PendingFile(
          slot, hash, algorithm, layer, header.getName(), directory ? out : null);
    }

    void write(ByteString data) throws IOException {
      ByteBuffer buf = data.asReadOnlyByteBuffer();
      hash.update(buf.duplicate());
      while (buf.hasRemaining()) {
        slot.channel.write(buf);
      }
      size += data.size();
    }

    Path commit(String doneDigest) throws IOException {
      String actual = algorithm + ":" + HexFormat.of().formatHex(hash.digest());
      String want = layer.getDigest();
      if (!doneDigest.equals(want) || !actual.equals(want) || size != layer.getSize()) {
        discard();
        throw Status.DATA_LOSS
            .withDescription(
                String.format(
                    "%s: expected %s (%d bytes), received %s (%d bytes), the daemon verified %s",
                    slot.path.getFileName(), want, layer.getSize(), actual, size,
                    doneDigest.isEmpty() ? "nothing" : doneDigest))
            .asRuntimeException();
      }
      if (unpackInto != null) {
        // The archive checked out: the directory is made from it, and the archive removed.
        try {
          slot.channel.close();
          try (InputStream archive = java.nio.channels.Channels.newInputStream(slot.reopen())) {
            return Directories.unpack(
                archive, unpackInto, name, layer.getAnnotationsMap(),
                Directories.Limits.DEFAULT);
          }
        } finally {
          discard();
        }
      }
      try {
        slot.commit();
      } catch (IOException | RuntimeException e) {
        discard();
        throw e;
      }
      closed = true;
      return slot.path;
    }

    void discard() {
      if (!closed) {
        closed = true;
        slot.discard();
      }
    }
  }
}
