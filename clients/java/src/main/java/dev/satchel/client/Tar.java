package dev.satchel.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * A small streaming tar reader, and the header writer {@link Pack} uses: ustar headers, PAX
 * extended headers ({@code x}, for path, linkpath, size and mtime) and GNU long names ({@code L},
 * {@code K}). No dependency: the archives of directory layers are the only tars this client reads
 * or writes.
 */
final class Tar {
  static final int BLOCK = 512;

  /** The largest extension header (PAX {@code x}, GNU {@code L}/{@code K}) held in memory. */
  static final int EXTENSION_MAX_BYTES = 1 << 20;

  /** The largest value an 11-digit octal field holds (8 GiB - 1). */
  private static final long OCTAL_11_MAX = 077777777777L;

  private static final byte[] USTAR_MAGIC = "ustar\0".getBytes(StandardCharsets.US_ASCII);

  private Tar() {}

  /** A malformed archive: a cut stream, a bad checksum or field, a broken gzip. */
  static final class BrokenArchive extends IOException {
    BrokenArchive(String message) {
      super(message);
    }

    BrokenArchive(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** One entry, its extension headers folded in. Read its data from {@link Reader#data()}. */
  record Entry(byte[] name, byte[] linkName, char type, int mode, long mtime, long size) {}

  /**
   * Reads the entries of an uncompressed tar stream. {@link #next} folds PAX {@code x} headers and
   * GNU {@code L}/{@code K} names into the entry they precede; a PAX global header ({@code g}) is
   * passed on as an entry of its own. The archive ends at the first zero block (or a clean end of
   * the stream); {@link #next} then reads the stream to its end, so a hash of it covers it all.
   */
  static final class Reader {
    private final InputStream in;
    private long left;
    private long padding;

    Reader(InputStream in) {
      this.in = in;
    }

    /** The next entry, skipping what is left of the one before; null at the end. */
    Entry next() throws IOException {
      skip(left + padding);
      left = padding = 0;
      Map<String, byte[]> pax = new HashMap<>();
      byte[] longName = null;
      byte[] longLink = null;
      while (true) {
        byte[] header = new byte[BLOCK];
        int got = in.readNBytes(header, 0, BLOCK);
        if (got == 0) {
          return null;
        }
        if (got < BLOCK) {
          throw new BrokenArchive("the archive ends inside a header");
        }
        if (allZero(header)) {
          in.transferTo(OutputStream.nullOutputStream());
          return null;
        }
        checkSum(header);
        char flag = (char) (header[156] & 0xff);
        long size = numeric(header, 124, 12, "size");
        if (flag == 'x' || flag == 'L' || flag == 'K') {
          if (size > EXTENSION_MAX_BYTES) {
            throw new BrokenArchive("an extension header of " + size + " bytes");
          }
          byte[] data = in.readNBytes((int) size);
          if (data.length < size) {
            throw new BrokenArchive("the archive ends inside an extension header");
          }
          skip(pad(size));
          if (flag == 'x') {
            pax.putAll(paxRecords(data));
          } else if (flag == 'L') {
            longName = cString(data, 0, data.length);
          } else {
            longLink = cString(data, 0, data.length);
          }
          continue;
        }
        byte[] name = cString(header, 0, 100);
        if (Arrays.equals(header, 257, 263, USTAR_MAGIC, 0, USTAR_MAGIC.length)) {
          byte[] prefix = cString(header, 345, 155);
          if (prefix.length > 0) {
            byte[] joined = Arrays.copyOf(prefix, prefix.length + 1 + name.length);
            joined[prefix.length] = '/';
            System.arraycopy(name, 0, joined, prefix.length + 1, name.length);
            name = joined;
          }
        }
        byte[] linkName = cString(header, 157, 100);
        long mtime = numeric(header, 136, 12, "mtime");
        int mode = (int) numeric(header, 100, 8, "mode");
        if (longName != null) {
          name = longName;
        }
        if (longLink != null) {
          linkName = longLink;
        }
        if (pax.containsKey("path")) {
          name = pax.get("path");
        }
        if (pax.containsKey("linkpath")) {
          linkName = pax.get("linkpath");
        }
        if (pax.containsKey("size")) {
          size = paxNumber(pax.get("size"), "size");
        }
        if (pax.containsKey("mtime")) {
          mtime = paxNumber(pax.get("mtime"), "mtime");
        }
        left = size;
        padding = pad(size);
        char type = flag == '\0' || flag == '7' ? '0' : flag;
        return new Entry(name, linkName, type, mode, mtime, size);
      }
    }

    /** The current entry's bytes; reading past them gives -1. */
    InputStream data() {
      return new InputStream() {
        @Override
        public int read() throws IOException {
          byte[] one = new byte[1];
          return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] buf, int off, int len) throws IOException {
          if (left == 0) {
            return -1;
          }
          int n = in.read(buf, off, (int) Math.min(len, left));
          if (n < 0) {
            throw new BrokenArchive("the archive ends inside an entry");
          }
          left -= n;
          return n;
        }
      };
    }

    private void skip(long n) throws IOException {
      byte[] buf = new byte[8192];
      while (n > 0) {
        int got = in.read(buf, 0, (int) Math.min(buf.length, n));
        if (got < 0) {
          throw new BrokenArchive("the archive ends inside an entry");
        }
        n -= got;
      }
    }
  }

  private static boolean allZero(byte[] block) {
    for (byte b : block) {
      if (b != 0) {
        return false;
      }
    }
    return true;
  }

  private static long pad(long size) {
    return (BLOCK - size % BLOCK) % BLOCK;
  }

  /** The bytes of a field up to its first NUL. */
  private static byte[] cString(byte[] b, int off, int len) {
    int end = off;
    while (end < off + len && b[end] != 0) {
      end++;
    }
    return Arrays.copyOfRange(b, off, end);
  }

  /** A numeric field: octal ASCII (spaces and NULs around it), or GNU base-256. */
  private static long numeric(byte[] h, int off, int len, String what) throws BrokenArchive {
    if ((h[off] & 0x80) != 0) {
      if ((h[off] & 0xff) == 0xff) {
        throw new BrokenArchive("a header's " + what + " is negative");
      }
      long n = h[off] & 0x7f;
      for (int i = off + 1; i < off + len; i++) {
        if (n > (Long.MAX_VALUE >> 8)) {
          throw new BrokenArchive("a header's " + what + " is too large");
        }
        n = (n << 8) | (h[i] & 0xff);
      }
      return n;
    }
    String text = new String(cString(h, off, len), StandardCharsets.ISO_8859_1).trim();
    if (text.isEmpty()) {
      return 0;
    }
    if (!text.matches("[0-7]+") || text.length() > 21) {
      throw new BrokenArchive("a header's " + what + " is not a number: \"" + text + "\"");
    }
    return Long.parseLong(text, 8);
  }

  /** Checks a header's checksum (the unsigned sum, or signed as some old writers made it). */
  private static void checkSum(byte[] h) throws BrokenArchive {
    long stored = numeric(h, 148, 8, "checksum");
    long unsigned = 0;
    long signed = 0;
    for (int i = 0; i < BLOCK; i++) {
      int b = i >= 148 && i < 156 ? 0x20 : h[i];
      unsigned += b & 0xff;
      signed += b;
    }
    if (stored != unsigned && stored != signed) {
      throw new BrokenArchive("a header's checksum does not match");
    }
  }

  /** PAX records ({@code LEN key=value\n}...): key to raw value. */
  private static Map<String, byte[]> paxRecords(byte[] data) throws BrokenArchive {
    Map<String, byte[]> records = new HashMap<>();
    int at = 0;
    while (at < data.length) {
      int space = at;
      while (space < data.length && data[space] != ' ') {
        space++;
      }
      String lenText = new String(data, at, space - at, StandardCharsets.ISO_8859_1);
      int len = lenText.matches("[0-9]{1,7}") ? Integer.parseInt(lenText) : -1;
      if (len <= 0 || space >= data.length || at + len > data.length || data[at + len - 1] != '\n') {
        if (allZeroFrom(data, at)) {
          break;
        }
        throw new BrokenArchive("a PAX header is malformed");
      }
      int eq = space + 1;
      while (eq < at + len - 1 && data[eq] != '=') {
        eq++;
      }
      if (eq >= at + len - 1) {
        throw new BrokenArchive("a PAX record has no '='");
      }
      String key = new String(data, space + 1, eq - space - 1, StandardCharsets.UTF_8);
      records.put(key, Arrays.copyOfRange(data, eq + 1, at + len - 1));
      at += len;
    }
    return records;
  }

  private static boolean allZeroFrom(byte[] data, int from) {
    for (int i = from; i < data.length; i++) {
      if (data[i] != 0) {
        return false;
      }
    }
    return true;
  }

  private static long paxNumber(byte[] value, String what) throws BrokenArchive {
    String text = new String(value, StandardCharsets.ISO_8859_1);
    if (!text.matches("-?[0-9]{1,18}(\\.[0-9]*)?")) {
      throw new BrokenArchive("a PAX " + what + " is not a number");
    }
    // Seconds with a fraction: their floor.
    return new BigDecimal(text).setScale(0, RoundingMode.FLOOR).longValueExact();
  }

  // ---- Writing (pack).

  /** What pack writes of one entry: type '0' a file, '2' a symlink, '5' a directory. */
  record Header(String name, char type, int mode, long mtime, long size, String linkName) {}

  /**
   * The header blocks of one entry: a ustar header (uid and gid 0, no owner names), preceded by a
   * PAX {@code x} header when the name or link target is not ASCII or too long for its field, or
   * the size or mtime too large for theirs.
   */
  static byte[] headerBlocks(Header h) {
    StringBuilder records = new StringBuilder();
    String name = h.name();
    String link = h.linkName();
    long size = h.size();
    long mtime = h.mtime();
    if (!fits(name)) {
      records.append(paxRecord("path", name));
      name = shortened(name);
    }
    if (!fits(link)) {
      records.append(paxRecord("linkpath", link));
      link = shortened(link);
    }
    if (size > OCTAL_11_MAX) {
      records.append(paxRecord("size", Long.toString(size)));
      size = 0;
    }
    if (mtime < 0 || mtime > OCTAL_11_MAX) {
      records.append(paxRecord("mtime", Long.toString(mtime)));
      mtime = 0;
    }
    byte[] entry = ustar(name, h.type(), h.mode(), mtime, size, link);
    if (records.length() == 0) {
      return entry;
    }
    byte[] data = records.toString().getBytes(StandardCharsets.UTF_8);
    byte[] pax = ustar("././@PaxHeader", 'x', 0644, 0, data.length, "");
    byte[] out = new byte[BLOCK + data.length + (int) pad(data.length) + BLOCK];
    System.arraycopy(pax, 0, out, 0, BLOCK);
    System.arraycopy(data, 0, out, BLOCK, data.length);
    System.arraycopy(entry, 0, out, out.length - BLOCK, BLOCK);
    return out;
  }

  /** The zero bytes after an entry's {@code size} bytes of data. */
  static byte[] dataPadding(long size) {
    return new byte[(int) pad(size)];
  }

  /** The end of an archive: two zero blocks. */
  static byte[] endOfArchive() {
    return new byte[2 * BLOCK];
  }

  /** A field holds {@code s} as is: ASCII (as Go's archive/tar requires of ustar), 100 bytes. */
  private static boolean fits(String s) {
    if (s.length() > 100) {
      return false;
    }
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == 0 || c > 0x7f) {
        return false;
      }
    }
    return true;
  }

  /** What a reader without PAX sees of a name in a PAX header: ASCII, cut to its field. */
  private static String shortened(String s) {
    String ascii = s.replaceAll("[^\\x20-\\x7e]", "_");
    return ascii.length() > 100 ? ascii.substring(0, 100) : ascii;
  }

  /** One PAX record, {@code LEN key=value\n}, LEN counting the whole record. */
  private static String paxRecord(String key, String value) {
    int body =
        key.getBytes(StandardCharsets.UTF_8).length
            + value.getBytes(StandardCharsets.UTF_8).length
            + 3;
    int len = body + Integer.toString(body).length();
    if (body + Integer.toString(len).length() != len) {
      len = body + Integer.toString(len).length();
    }
    return len + " " + key + "=" + value + "\n";
  }

  private static byte[] ustar(
      String name, char type, int mode, long mtime, long size, String linkName) {
    byte[] h = new byte[BLOCK];
    put(h, 0, 100, name.getBytes(StandardCharsets.US_ASCII));
    octal(h, 100, 8, mode & 07777);
    octal(h, 108, 8, 0);
    octal(h, 116, 8, 0);
    octal(h, 124, 12, size);
    octal(h, 136, 12, mtime);
    h[156] = (byte) type;
    put(h, 157, 100, linkName.getBytes(StandardCharsets.US_ASCII));
    put(h, 257, 8, "ustar\u000000".getBytes(StandardCharsets.US_ASCII));
    Arrays.fill(h, 148, 156, (byte) ' ');
    long sum = 0;
    for (byte b : h) {
      sum += b & 0xff;
    }
    put(h, 148, 8, String.format("%06o\0 ", sum).getBytes(StandardCharsets.US_ASCII));
    return h;
  }

  private static void put(byte[] h, int off, int len, byte[] value) {
    System.arraycopy(value, 0, h, off, Math.min(len, value.length));
  }

  /** An octal field of {@code width} bytes: digits, then NUL. */
  private static void octal(byte[] h, int off, int width, long value) {
    String digits = Long.toOctalString(value);
    String padded = "0".repeat(Math.max(0, width - 1 - digits.length())) + digits;
    put(h, off, width, (padded + "\0").getBytes(StandardCharsets.US_ASCII));
  }
}
