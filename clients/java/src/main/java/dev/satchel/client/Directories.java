package dev.satchel.client;

import dev.satchel.v1.Descriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Map;
import java.util.Set;
import java.util.zip.GZIPInputStream;

/**
 * Directories as the ORAS CLI pushes them: one tar+gzip layer titled with the directory's name,
 * annotated {@value #UNPACK_ANNOTATION} {@code "true"} and, in {@value #TAR_DIGEST_ANNOTATION}, the
 * digest of the uncompressed tar. Push packs a directory given as a file ({@link Pack}); pull
 * unpacks such a layer ({@link #unpack}) once its digest and size check.
 *
 * <p>Unpacking: every entry must lie under the title ({@code dir} or {@code dir/...}, a leading
 * {@code ./} and trailing {@code /} dropped), and what follows it must be a safe relative path
 * ({@link Titles#check}). Regular files, directories, symbolic links and hard links are made;
 * anything else (devices, FIFOs) is refused. A symbolic link's target must be relative and may
 * climb ({@code ../}) only at its start and no higher than the tree's top, so it resolves inside
 * the tree whatever the links it passes through; a hard link names an earlier regular file of the
 * archive. Entries are made through {@link OutputDir}, which never writes through a link, so an
 * entry cannot write through a link an earlier one made. Files keep their mode ({@code & 0777},
 * less the umask) and modification time. The tree is built under a temporary name beside the final
 * one and takes it only when every entry is in place and the tar's digest (sha256 or sha512;
 * another algorithm is not checked) matches; on any failure it is removed. Unsafe entries are
 * INVALID_ARGUMENT, a wrong digest or a broken archive DATA_LOSS, an archive past the {@link
 * Limits} RESOURCE_EXHAUSTED.
 */
public final class Directories {
  /** The layer annotation that asks for unpacking (value "true"). */
  public static final String UNPACK_ANNOTATION = "io.deis.oras.content.unpack";

  /** The layer annotation holding the uncompressed tar's digest. */
  public static final String TAR_DIGEST_ANNOTATION = "io.deis.oras.content.digest";

  /** The layer media type of a packed directory when the options name none. */
  public static final String MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

  private Directories() {}

  /**
   * How much one archive may unpack to.
   *
   * @param maxBytes bytes of the uncompressed tar stream, headers included
   * @param maxEntries entries
   */
  public record Limits(long maxBytes, long maxEntries) {
    /** 64 GiB and a million entries. */
    public static final Limits DEFAULT = new Limits(64L << 30, 1_000_000);
  }

  /** Whether a layer is a directory to unpack. */
  public static boolean isDirectory(Descriptor layer) {
    return "true".equals(layer.getAnnotationsMap().get(UNPACK_ANNOTATION));
  }

  /**
   * Unpacks the gzip-compressed tar {@code archive} (already verified against its layer digest)
   * into the directory {@code title} under {@code outputDir} (made if missing), as the class
   * comment describes; returns the directory's path. The archive file is left where it is.
   *
   * @param annotations the layer's annotations (the tar digest is read from them)
   * @throws StatusRuntimeException INVALID_ARGUMENT, DATA_LOSS or RESOURCE_EXHAUSTED (see above),
   *     FAILED_PRECONDITION for a link in the output directory where the title needs a directory
   */
  public static Path unpack(
      Path archive, Path outputDir, String title, Map<String, String> annotations, Limits limits)
      throws IOException {
    try (OutputDir out = OutputDir.open(outputDir);
        InputStream in = Files.newInputStream(archive)) {
      return unpack(in, out, title, annotations, limits);
    }
  }

  static Path unpack(
      InputStream archive,
      OutputDir out,
      String title,
      Map<String, String> annotations,
      Limits limits)
      throws IOException {
    Titles.check(title);
    String expected = annotations.get(TAR_DIGEST_ANNOTATION);
    MessageDigest hash = hashFor(expected);
    OutputDir.Tree tree = out.tree(title);
    try {
      Counted counted = new Counted(archive, hash, title, limits.maxBytes());
      Tar.Reader reader = new Tar.Reader(counted);
      Builder builder = new Builder(tree.root, title, limits);
      long entries = 0;
      for (Tar.Entry e = reader.next(); e != null; e = reader.next()) {
        if (++entries > limits.maxEntries()) {
          throw exhausted(title, "more than " + limits.maxEntries() + " entries");
        }
        builder.put(e, reader.data());
      }
      // The reader read the stream to its end: the digest covers it all.
      if (hash != null) {
        String got =
            expected.substring(0, expected.indexOf(':') + 1)
                + HexFormat.of().formatHex(hash.digest());
        if (!got.equals(expected)) {
          throw dataLoss(
              title, "the archive's content digest is " + got + ", its layer says " + expected);
        }
      }
      tree.commit();
      return tree.path;
    } catch (Tar.BrokenArchive e) {
      tree.discard();
      throw Status.DATA_LOSS
          .withDescription(
              "cannot unpack the directory " + Titles.shown(title) + ": the archive is broken: "
                  + e.getMessage())
          .withCause(e)
          .asRuntimeException();
    } catch (IOException | RuntimeException e) {
      tree.discard();
      throw e;
    }
  }

  /** The hash a digest annotation names; null for none or an algorithm this client lacks. */
  private static MessageDigest hashFor(String digest) {
    int colon = digest == null ? -1 : digest.indexOf(':');
    if (colon < 0) {
      return null;
    }
    String name =
        switch (digest.substring(0, colon)) {
          case "sha256" -> "SHA-256";
          case "sha512" -> "SHA-512";
          default -> null;
        };
    if (name == null) {
      return null;
    }
    try {
      return MessageDigest.getInstance(name);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static StatusRuntimeException unsafeEntry(String title, String why) {
    return Status.INVALID_ARGUMENT
        .withDescription("refusing the directory " + Titles.shown(title) + ": " + why)
        .asRuntimeException();
  }

  private static StatusRuntimeException dataLoss(String title, String why) {
    return Status.DATA_LOSS
        .withDescription("cannot unpack the directory " + Titles.shown(title) + ": " + why)
        .asRuntimeException();
  }

  private static StatusRuntimeException exhausted(String title, String why) {
    return Status.RESOURCE_EXHAUSTED
        .withDescription("cannot unpack the directory " + Titles.shown(title) + ": " + why)
        .asRuntimeException();
  }

  /**
   * The uncompressed stream: gunzipped (member after member), counted against the limit and
   * hashed; its own read errors are a broken archive.
   */
  private static final class Counted extends InputStream {
    private final InputStream in;
    private final MessageDigest hash;
    private final String title;
    private final long limit;
    private long read;

    Counted(InputStream archive, MessageDigest hash, String title, long limit) throws IOException {
      try {
        this.in = new GZIPInputStream(new BufferedInputStream(archive, 1 << 16), 1 << 16);
      } catch (IOException e) {
        throw new Tar.BrokenArchive(String.valueOf(e.getMessage()), e);
      }
      this.hash = hash;
      this.title = title;
      this.limit = limit;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] buf, int off, int len) throws IOException {
      int n;
      try {
        n = in.read(buf, off, len);
      } catch (IOException e) {
        throw new Tar.BrokenArchive(String.valueOf(e.getMessage()), e);
      }
      if (n > 0) {
        read += n;
        if (read > limit) {
          throw exhausted(title, "it unpacks to more than " + limit + " bytes");
        }
        if (hash != null) {
          hash.update(buf, off, n);
        }
      }
      return n;
    }
  }

  /** The tree being unpacked, under its temporary name. */
  private static final class Builder {
    private final OutputDir root;
    private final String title;
    private final Limits limits;
    /** Which entries made regular files, for the hard links that follow. */
    private final Set<String> files = new HashSet<>();
    /** The sizes the entries declared so far. */
    private long declared;
    private final byte[] buf = new byte[256 << 10];

    Builder(OutputDir root, String title, Limits limits) {
      this.root = root;
      this.title = title;
      this.limits = limits;
    }

    /** Makes one entry. */
    void put(Tar.Entry e, InputStream data) throws IOException {
      String rel = relative(title, e.name());
      if (rel.isEmpty() && e.type() != '5') {
        throw unsafeEntry(title, "its top is not a directory");
      }
      try {
        switch (e.type()) {
          case '5' -> {
            if (!rel.isEmpty()) {
              root.makeDirectories(rel);
            }
            files.remove(rel);
          }
          case '0' -> {
            declared += e.size();
            if (declared > limits.maxBytes() || declared < 0) {
              throw exhausted(title, "it unpacks to more than " + limits.maxBytes() + " bytes");
            }
            file(rel, e, data);
            files.add(rel);
          }
          case '2' -> {
            String target = utf8(title, e.linkName(), "a link's target");
            checkLinkTarget(title, rel, target);
            root.symlink(rel, target);
            files.remove(rel);
          }
          case '1' -> {
            String existing = relative(title, e.linkName());
            if (!files.contains(existing)) {
              throw unsafeEntry(
                  title,
                  "the hard link " + Titles.shown(rel) + " names " + Titles.shown(existing)
                      + ", not an earlier file of the archive");
            }
            root.hardLink(existing, rel);
            files.add(rel);
          }
          // A PAX global header: nothing this client applies.
          case 'g' -> {}
          default -> throw unsafeEntry(
              title, Titles.shown(rel) + " is a " + kind(e.type())
                  + ", not a file, directory or link");
        }
      } catch (StatusRuntimeException refused) {
        // Refusals inside the tree (a link or a file in the way) only the archive's entries cause;
        // the refusal names the tree's temporary path, so it is the cause, not the message.
        if (refused.getStatus().getCode() == Status.Code.FAILED_PRECONDITION) {
          throw Status.INVALID_ARGUMENT
              .withDescription(
                  "refusing the directory " + Titles.shown(title) + ": the entry "
                      + Titles.shown(rel) + " would be made through a link or a file, or over a"
                      + " directory, that an earlier entry made")
              .withCause(refused)
              .asRuntimeException();
        }
        throw refused;
      }
    }

    private void file(String rel, Tar.Entry e, InputStream data) throws IOException {
      OutputDir.Slot slot = root.slot(rel, e.mode() & 0777, false);
      try {
        int n;
        while ((n = data.read(buf)) > 0) {
          ByteBuffer piece = ByteBuffer.wrap(buf, 0, n);
          while (piece.hasRemaining()) {
            slot.channel.write(piece);
          }
        }
        try {
          slot.setLastModified(FileTime.from(e.mtime(), java.util.concurrent.TimeUnit.SECONDS));
        } catch (IOException ignored) {
          // As tar does: a time that cannot be set does not fail the file.
        }
        slot.commit();
      } catch (IOException | RuntimeException failed) {
        slot.discard();
        throw failed;
      }
    }
  }

  private static String kind(char type) {
    return switch (type) {
      case '3' -> "character device";
      case '4' -> "block device";
      case '6' -> "FIFO";
      default -> "'" + type + "' entry";
    };
  }

  private static String utf8(String title, byte[] raw, String what) {
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(raw))
          .toString();
    } catch (CharacterCodingException e) {
      throw unsafeEntry(title, what + " is not UTF-8");
    }
  }

  /**
   * The part of entry name {@code raw} under {@code title} ("" for the top itself), checked as a
   * title; {@code ./} in front and {@code /} at the end are dropped.
   */
  static String relative(String title, byte[] raw) {
    String name = utf8(title, raw, "an entry's name");
    int end = name.length();
    while (end > 0 && name.charAt(end - 1) == '/') {
      end--;
    }
    name = name.substring(0, end);
    while (name.startsWith("./")) {
      name = name.substring(2);
    }
    String rel;
    if (name.equals(title)) {
      rel = "";
    } else if (name.startsWith(title + "/")) {
      rel = name.substring(title.length() + 1);
    } else {
      throw unsafeEntry(title, "the entry " + Titles.shown(name) + " lies outside it");
    }
    if (!rel.isEmpty()) {
      try {
        Titles.check(rel);
      } catch (StatusRuntimeException e) {
        throw unsafeEntry(title, e.getStatus().getDescription());
      }
    }
    return rel;
  }

  /**
   * A symbolic link at {@code rel} may point only inside the tree: relative, with {@code ..}
   * parts only at its start and no more of them than {@code rel} has directories above it, and
   * otherwise only plain names.
   */
  static void checkLinkTarget(String title, String rel, String target) {
    String shown = "the link " + Titles.shown(rel) + " points ";
    if (target.isEmpty() || target.startsWith("/")) {
      throw unsafeEntry(title, shown + "to an absolute or empty path: " + Titles.shown(target));
    }
    int depth = rel.split("/", -1).length - 1;
    int end = target.length();
    while (end > 0 && target.charAt(end - 1) == '/') {
      end--;
    }
    String[] parts = target.substring(0, end).split("/", -1);
    int climbs = 0;
    while (climbs < parts.length && parts[climbs].equals("..")) {
      climbs++;
    }
    if (climbs > depth) {
      throw unsafeEntry(title, shown + "outside the directory: " + Titles.shown(target));
    }
    for (int i = climbs; i < parts.length; i++) {
      String part = parts[i];
      if (part.isEmpty() || part.equals(".") || part.equals("..") || part.indexOf('\0') >= 0) {
        throw unsafeEntry(
            title,
            shown + "through '.', '..' or an empty part after its start: " + Titles.shown(target));
      }
    }
  }
}
