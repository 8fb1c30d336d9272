package dev.satchel.client;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.Closeable;
import java.io.IOException;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.SecureDirectoryStream;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;

/**
 * The directory a pull writes into. Below it no symbolic link is followed: a link (or a file) where
 * a title needs a directory, and a directory at a file's name, are FAILED_PRECONDITION (the
 * directory, not the artifact, is at fault). Each file's bytes go to a partial file created
 * exclusively, without following links, under a name with 128 random bits, beside its final name;
 * {@link Slot#commit()} renames it into place, which replaces a link there and never writes through
 * it.
 *
 * <p>On Linux (and wherever {@link Files#newDirectoryStream(Path)} gives a {@link
 * SecureDirectoryStream}) every component is opened relative to its parent's descriptor with
 * NOFOLLOW_LINKS (openat), files are created and renamed relative to it (openat, renameat), so
 * swapping a component for a link while a pull runs cannot redirect a byte. Only creating a missing
 * directory goes by path (the API has no mkdirat); it is then reopened with NOFOLLOW_LINKS from its
 * parent, so at worst an empty directory appears elsewhere. Elsewhere the components are checked
 * by path with lstat before use: that holds against links planted before the pull, not against one
 * swapped in between the check and the write.
 */
abstract class OutputDir implements Closeable {
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final LinkOption NOFOLLOW = LinkOption.NOFOLLOW_LINKS;
  private static final Set<OpenOption> CREATE_PARTIAL =
      Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS);

  final Path base;

  private OutputDir(Path base) {
    this.base = base;
  }

  /** Creates dir if it is missing (following a link there: the caller named it) and opens it. */
  static OutputDir open(Path dir) throws IOException {
    Path base = dir.toAbsolutePath().normalize();
    Files.createDirectories(base);
    DirectoryStream<Path> stream = Files.newDirectoryStream(base);
    if (stream instanceof SecureDirectoryStream<Path> secure) {
      return new Secure(base, secure);
    }
    stream.close();
    return new Checked(base);
  }

  /** Where the file titled {@code title} (checked by {@link Titles#check}) goes: walks, creates. */
  abstract Slot slot(String title) throws IOException;

  /** A file on its way: its partial file's channel, then commit or discard. */
  abstract static class Slot {
    final Path path;
    final SeekableByteChannel channel;

    Slot(Path path, SeekableByteChannel channel) {
      this.path = path;
      this.channel = channel;
    }

    /** Renames the partial file to the final name; a directory there is FAILED_PRECONDITION. */
    abstract void commit() throws IOException;

    /** Removes the partial file and the directories made for it. */
    abstract void discard();
  }

  static String partialName() {
    byte[] random = new byte[16];
    RANDOM.nextBytes(random);
    return ".satchel-" + HexFormat.of().formatHex(random) + ".partial";
  }

  static StatusRuntimeException precondition(Path at, String what) {
    return Status.FAILED_PRECONDITION
        .withDescription("pull: " + Titles.shown(at.toString()) + " " + what)
        .asRuntimeException();
  }

  static void closeQuietly(Closeable c) {
    try {
      c.close();
    } catch (IOException ignored) {
      // Nothing more to do.
    }
  }

  /** The openat/renameat way, through {@link SecureDirectoryStream}. */
  private static final class Secure extends OutputDir {
    private final SecureDirectoryStream<Path> root;

    Secure(Path base, SecureDirectoryStream<Path> root) {
      super(base);
      this.root = root;
    }

    private record Made(SecureDirectoryStream<Path> parent, Path name) {}

    @Override
    Slot slot(String title) throws IOException {
      String[] parts = title.split("/", -1);
      List<SecureDirectoryStream<Path>> opened = new ArrayList<>();
      List<Made> made = new ArrayList<>();
      SecureDirectoryStream<Path> dir = root;
      Path at = base;
      try {
        for (int i = 0; i < parts.length - 1; i++) {
          at = at.resolve(parts[i]);
          dir = openDir(dir, Path.of(parts[i]), at, made);
          opened.add(dir);
        }
        Path name = Path.of(parts[parts.length - 1]);
        at = at.resolve(name);
        if (isDirectory(dir, name)) {
          throw precondition(at, "is a directory");
        }
        Path partial = Path.of(partialName());
        SeekableByteChannel channel = dir.newByteChannel(partial, CREATE_PARTIAL);
        return new SecureSlot(at, channel, dir, partial, name, opened, made);
      } catch (IOException | RuntimeException e) {
        release(opened, made, true);
        throw e;
      }
    }

    private static SecureDirectoryStream<Path> openDir(
        SecureDirectoryStream<Path> parent, Path name, Path at, List<Made> made) throws IOException {
      try {
        return parent.newDirectoryStream(name, NOFOLLOW);
      } catch (NoSuchFileException missing) {
        try {
          Files.createDirectory(at);
          made.add(new Made(parent, name));
        } catch (FileAlreadyExistsException raced) {
          // Someone made it meanwhile: open it as found, without following it.
        }
      } catch (IOException e) {
        throw classify(parent, name, at, e);
      }
      try {
        return parent.newDirectoryStream(name, NOFOLLOW);
      } catch (IOException e) {
        throw classify(parent, name, at, e);
      }
    }

    /** Why a component would not open as a directory: a link, a file, or e itself. */
    private static IOException classify(
        SecureDirectoryStream<Path> parent, Path name, Path at, IOException e) {
      BasicFileAttributes attrs;
      try {
        attrs =
            parent
                .getFileAttributeView(name, BasicFileAttributeView.class, NOFOLLOW)
                .readAttributes();
      } catch (IOException unknown) {
        return e;
      }
      if (attrs.isSymbolicLink()) {
        throw precondition(at, "is a symbolic link, which a pull does not follow");
      }
      if (!attrs.isDirectory()) {
        throw precondition(at, "is not a directory");
      }
      return e;
    }

    private static boolean isDirectory(SecureDirectoryStream<Path> dir, Path name) {
      try {
        return dir.getFileAttributeView(name, BasicFileAttributeView.class, NOFOLLOW)
            .readAttributes()
            .isDirectory();
      } catch (IOException absent) {
        return false;
      }
    }

    private static void release(
        List<SecureDirectoryStream<Path>> opened, List<Made> made, boolean failed) {
      if (failed) {
        for (int i = made.size() - 1; i >= 0; i--) {
          try {
            made.get(i).parent().deleteDirectory(made.get(i).name());
          } catch (IOException ignored) {
            // Not empty any more: someone else's now.
          }
        }
      }
      for (SecureDirectoryStream<Path> s : opened) {
        closeQuietly(s);
      }
    }

    private static final class SecureSlot extends Slot {
      private final SecureDirectoryStream<Path> dir;
      private final Path partial;
      private final Path name;
      private final List<SecureDirectoryStream<Path>> opened;
      private final List<Made> made;

      SecureSlot(
          Path path,
          SeekableByteChannel channel,
          SecureDirectoryStream<Path> dir,
          Path partial,
          Path name,
          List<SecureDirectoryStream<Path>> opened,
          List<Made> made) {
        super(path, channel);
        this.dir = dir;
        this.partial = partial;
        this.name = name;
        this.opened = opened;
        this.made = made;
      }

      @Override
      void commit() throws IOException {
        channel.close();
        try {
          dir.move(partial, dir, name);
        } catch (FileSystemException e) {
          if (isDirectory(dir, name)) {
            throw precondition(path, "is a directory");
          }
          throw e;
        }
        release(opened, made, false);
      }

      @Override
      void discard() {
        closeQuietly(channel);
        try {
          dir.deleteFile(partial);
        } catch (IOException ignored) {
          // Already gone.
        }
        release(opened, made, true);
      }
    }

    @Override
    public void close() {
      closeQuietly(root);
    }
  }

  /** Without SecureDirectoryStream: lstat checks by path (see the class comment for the race). */
  private static final class Checked extends OutputDir {
    Checked(Path base) {
      super(base);
    }

    @Override
    Slot slot(String title) throws IOException {
      String[] parts = title.split("/", -1);
      List<Path> made = new ArrayList<>();
      Path at = base;
      try {
        for (int i = 0; i < parts.length - 1; i++) {
          at = at.resolve(parts[i]);
          BasicFileAttributes attrs = lstat(at);
          if (attrs == null) {
            Files.createDirectory(at);
            made.add(at);
          } else if (attrs.isSymbolicLink()) {
            throw precondition(at, "is a symbolic link, which a pull does not follow");
          } else if (!attrs.isDirectory()) {
            throw precondition(at, "is not a directory");
          }
        }
        Path target = at.resolve(parts[parts.length - 1]);
        BasicFileAttributes attrs = lstat(target);
        if (attrs != null && attrs.isDirectory()) {
          throw precondition(target, "is a directory");
        }
        Path partial = at.resolve(partialName());
        return new CheckedSlot(target, Files.newByteChannel(partial, CREATE_PARTIAL), partial, made);
      } catch (IOException | RuntimeException e) {
        removeMade(made);
        throw e;
      }
    }

    private static BasicFileAttributes lstat(Path p) throws IOException {
      try {
        return Files.readAttributes(p, BasicFileAttributes.class, NOFOLLOW);
      } catch (NoSuchFileException absent) {
        return null;
      }
    }

    private static void removeMade(List<Path> made) {
      for (int i = made.size() - 1; i >= 0; i--) {
        try {
          Files.deleteIfExists(made.get(i));
        } catch (IOException ignored) {
          // Not empty any more.
        }
      }
    }

    private static final class CheckedSlot extends Slot {
      private final Path partial;
      private final List<Path> made;

      CheckedSlot(Path path, SeekableByteChannel channel, Path partial, List<Path> made) {
        super(path, channel);
        this.partial = partial;
        this.made = made;
      }

      @Override
      void commit() throws IOException {
        channel.close();
        BasicFileAttributes attrs = lstat(path);
        if (attrs != null && attrs.isDirectory()) {
          throw precondition(path, "is a directory");
        }
        Files.move(partial, path, StandardCopyOption.ATOMIC_MOVE);
      }

      @Override
      void discard() {
        closeQuietly(channel);
        try {
          Files.deleteIfExists(partial);
        } catch (IOException ignored) {
          // Already gone.
        }
        removeMade(made);
      }
    }

    @Override
    public void close() {}
  }
}
