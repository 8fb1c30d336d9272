package dev.satchel.client;

import io.grpc.Status;
import java.io.BufferedOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPOutputStream;

/**
 * Directories up: turns a directory into the layer the ORAS CLI makes of one, so {@code oras pull}
 * (and this client's pull) unpacks the same tree: a tar+gzip file whose entries are named under the
 * layer's title ({@code dir}, {@code dir/a.txt}, ...), in the order of a walk that visits each
 * directory's names sorted (by their UTF-8 bytes), with modes and modification times kept, uid and
 * gid 0 and no owner names, symbolic links stored as links and anything else (sockets, devices,
 * FIFOs) refused with INVALID_ARGUMENT. Names too long for ustar go in PAX headers. The layer is
 * annotated {@link Directories#UNPACK_ANNOTATION} "true", with the tar's sha256 under {@link
 * Directories#TAR_DIGEST_ANNOTATION}. The archive goes to a temporary file, which the caller
 * removes after the push; it is never held in memory.
 */
final class Pack {
  private static final LinkOption NOFOLLOW = LinkOption.NOFOLLOW_LINKS;

  private Pack() {}

  /**
   * A packed directory: the temporary archive, its sha256 digest and size, and the layer
   * annotations that mark it for unpacking.
   */
  record Packed(Path file, String digest, long size, Map<String, String> annotations) {}

  /** Packs the directory {@code dir} as a layer titled {@code title}. */
  static Packed pack(Path dir, String title) throws IOException {
    Path file = Files.createTempFile(".satchel-pack-", ".tar.gz");
    try {
      MessageDigest layerHash = sha256();
      MessageDigest tarHash = sha256();
      Counting counted;
      try (OutputStream disk =
              new BufferedOutputStream(Files.newOutputStream(file, StandardOpenOption.WRITE), 1 << 16);
          Counting c = new Counting(new DigestOutputStream(disk, layerHash));
          GZIPOutputStream gzip = new GZIPOutputStream(c, 1 << 16);
          DigestOutputStream tar = new DigestOutputStream(gzip, tarHash)) {
        counted = c;
        new Walk(tar).add(dir, title, true);
        tar.write(Tar.endOfArchive());
      }
      return new Packed(
          file,
          "sha256:" + HexFormat.of().formatHex(layerHash.digest()),
          counted.count,
          Map.of(
              Directories.TAR_DIGEST_ANNOTATION,
              "sha256:" + HexFormat.of().formatHex(tarHash.digest()),
              Directories.UNPACK_ANNOTATION,
              "true"));
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(file);
      throw e;
    }
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Counts the bytes written through it. */
  private static final class Counting extends FilterOutputStream {
    long count;

    Counting(OutputStream out) {
      super(out);
    }

    @Override
    public void write(int b) throws IOException {
      out.write(b);
      count++;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
      out.write(b, off, len);
      count += len;
    }
  }

  private static final class Walk {
    private final OutputStream tar;
    private final byte[] buf = new byte[1 << 16];

    Walk(OutputStream tar) {
      this.tar = tar;
    }

    /**
     * Adds {@code path} under the entry name {@code name}, and what it holds. The top is followed
     * if it is a link (the caller named it); inside, links are stored as links.
     */
    void add(Path path, String name, boolean top) throws IOException {
      LinkOption[] follow = top ? new LinkOption[0] : new LinkOption[] {NOFOLLOW};
      BasicFileAttributes attrs = Files.readAttributes(path, BasicFileAttributes.class, follow);
      int mode = (Integer) Files.getAttribute(path, "unix:mode", follow);
      long mtime = Math.floorDiv(attrs.lastModifiedTime().toMillis(), 1000L);
      if (attrs.isDirectory()) {
        tar.write(Tar.headerBlocks(new Tar.Header(name, '5', mode, mtime, 0, "")));
        for (String child : sortedNames(path)) {
          add(path.resolve(child), name + "/" + child, false);
        }
      } else if (attrs.isRegularFile()) {
        long size = attrs.size();
        tar.write(Tar.headerBlocks(new Tar.Header(name, '0', mode, mtime, size, "")));
        copy(path, size);
        tar.write(Tar.dataPadding(size));
      } else if (attrs.isSymbolicLink()) {
        String target = Files.readSymbolicLink(path).toString();
        tar.write(Tar.headerBlocks(new Tar.Header(name, '2', mode, mtime, 0, target)));
      } else {
        throw Status.INVALID_ARGUMENT
            .withDescription(
                "cannot pack " + path + ": " + Titles.shown(name) + " is " + kind(mode)
                    + ", not a file, directory or link")
            .asRuntimeException();
      }
    }

    /** Exactly {@code size} bytes of the file (opened without following a link). */
    private void copy(Path path, long size) throws IOException {
      try (InputStream in = Files.newInputStream(path, StandardOpenOption.READ, NOFOLLOW)) {
        long left = size;
        while (left > 0) {
          int n = in.read(buf, 0, (int) Math.min(buf.length, left));
          if (n < 0) {
            throw Status.ABORTED
                .withDescription("cannot pack " + path + ": it shrank while it was packed")
                .asRuntimeException();
          }
          tar.write(buf, 0, n);
          left -= n;
        }
      } catch (NoSuchFileException e) {
        throw SatchelClient.missingFile(path, e);
      }
    }

    /** A directory's names, sorted by their UTF-8 bytes (as Go's filepath.Walk sorts). */
    private static List<String> sortedNames(Path dir) throws IOException {
      List<String> names = new ArrayList<>();
      try (DirectoryStream<Path> children = Files.newDirectoryStream(dir)) {
        for (Path child : children) {
          names.add(child.getFileName().toString());
        }
      }
      names.sort(
          (a, b) ->
              Arrays.compareUnsigned(
                  a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8)));
      return names;
    }

    private static String kind(int mode) {
      return switch (mode & 0170000) {
        case 0140000 -> "a socket";
        case 0010000 -> "a FIFO";
        default -> "a device";
      };
    }
  }
}
