package dev.satchel.client;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
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
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

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
 *
 * <p>A directory layer's tree ({@link #tree}) is built under a random hidden name beside its final
 * name, in an OutputDir of its own, and renamed onto the final name when whole ({@link
 * Tree#commit}). Java has no renameat2(RENAME_EXCHANGE), so replacing an older tree takes two
 * renames, not one atomic swap: the old one is renamed aside to another random name, the new one
 * renamed in, then the old one removed; for a moment nothing stands at the final name. Inside a
 * tree, links are made like files: under a random name (by path: the API has no symlinkat or
 * linkat), then renamed onto their own.
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

  /**
   * {@link #open}, with the checks by path even where {@link SecureDirectoryStream} is there: for
   * tests of that way.
   */
  static OutputDir openByPath(Path dir) throws IOException {
    Path base = dir.toAbsolutePath().normalize();
    Files.createDirectories(base);
    return new Checked(base);
  }

  /** Where the file titled {@code title} (checked by {@link Titles#check}) goes: walks, creates. */
  final Slot slot(String title) throws IOException {
    return slot(title, -1, false);
  }

  /**
   * {@link #slot(String)}, the partial file made with {@code mode} (less the umask; negative: the
   * default). A {@code scratch} file will never take its final name (a directory layer's archive,
   * read back with {@link Slot#reopen} and discarded): a directory at that name is no obstacle.
   */
  abstract Slot slot(String title, int mode, boolean scratch) throws IOException;

  /** Makes the directory {@code name} and those on the way, walked as {@link #slot} walks them. */
  abstract void makeDirectories(String name) throws IOException;

  /**
   * Makes a symbolic link {@code name} to {@code target} (which the caller checked), replacing a
   * file or link there; a directory there is FAILED_PRECONDITION.
   */
  abstract void symlink(String name, String target) throws IOException;

  /**
   * Makes {@code name} a hard link to the regular file {@code existing} (anything else there is
   * FAILED_PRECONDITION), both below this directory, as {@link #symlink} makes a link.
   */
  abstract void hardLink(String existing, String name) throws IOException;

  /**
   * An empty directory under a random name beside {@code title}'s final name (the directories on
   * the way walked and made as {@link #slot} makes them), opened as an OutputDir of its own: build
   * the tree in {@link Tree#root}, then {@link Tree#commit} or {@link Tree#discard}.
   */
  abstract Tree tree(String title) throws IOException;

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

    /** Opens the partial file again, to read it (a scratch file). */
    abstract SeekableByteChannel reopen() throws IOException;

    /** Sets the partial file's modification (and access) time. */
    abstract void setLastModified(FileTime time) throws IOException;
  }

  /** A tree being built under a temporary name (see {@link #tree}). */
  abstract static class Tree {
    /** The final path. */
    final Path path;
    /** Where to build the tree until commit. */
    final OutputDir root;

    Tree(Path path, OutputDir root) {
      this.path = path;
      this.root = root;
    }

    /**
     * Gives the tree its final name: whatever stood there (a file, a link, an older tree) is
     * renamed aside, the tree renamed in, the old one removed (see the class comment). On failure
     * the old one is put back and the tree removed.
     */
    abstract void commit() throws IOException;

    /** Removes the tree and the directories made for it. */
    abstract void discard();
  }

  /** The partial file's permissions: {@code mode}'s low nine bits, or none (the default). */
  static FileAttribute<?>[] permissions(int mode) {
    if (mode < 0) {
      return new FileAttribute<?>[0];
    }
    Set<PosixFilePermission> perms = EnumSet.noneOf(PosixFilePermission.class);
    PosixFilePermission[] order = {
      PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE,
      PosixFilePermission.OTHERS_READ, PosixFilePermission.GROUP_EXECUTE,
      PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
      PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE,
      PosixFilePermission.OWNER_READ
    };
    for (int bit = 0; bit < order.length; bit++) {
      if ((mode & (1 << bit)) != 0) {
        perms.add(order[bit]);
      }
    }
    return new FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(perms)};
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

    /** The first {@code count} of {@code parts}, opened (made if missing) from the root. */
    private record Walked(
        SecureDirectoryStream<Path> dir,
        Path at,
        List<SecureDirectoryStream<Path>> opened,
        List<Made> made) {}

    private Walked walk(String[] parts, int count) throws IOException {
      List<SecureDirectoryStream<Path>> opened = new ArrayList<>();
      List<Made> made = new ArrayList<>();
      SecureDirectoryStream<Path> dir = root;
      Path at = base;
      try {
        for (int i = 0; i < count; i++) {
          at = at.resolve(parts[i]);
          dir = openDir(dir, Path.of(parts[i]), at, made);
          opened.add(dir);
        }
      } catch (IOException | RuntimeException e) {
        release(opened, made, true);
        throw e;
      }
      return new Walked(dir, at, opened, made);
    }

    @Override
    Slot slot(String title, int mode, boolean scratch) throws IOException {
      String[] parts = title.split("/", -1);
      Walked w = walk(parts, parts.length - 1);
      try {
        Path name = Path.of(parts[parts.length - 1]);
        Path at = w.at().resolve(name);
        if (!scratch && isDirectory(w.dir(), name)) {
          throw precondition(at, "is a directory");
        }
        Path partial = Path.of(partialName());
        SeekableByteChannel channel =
            w.dir().newByteChannel(partial, CREATE_PARTIAL, permissions(mode));
        return new SecureSlot(at, channel, w.dir(), partial, name, w.opened(), w.made());
      } catch (IOException | RuntimeException e) {
        release(w.opened(), w.made(), true);
        throw e;
      }
    }

    @Override
    void makeDirectories(String name) throws IOException {
      String[] parts = name.split("/", -1);
      Walked w = walk(parts, parts.length);
      release(w.opened(), w.made(), false);
    }

    @Override
    void symlink(String name, String target) throws IOException {
      String[] parts = name.split("/", -1);
      Walked w = walk(parts, parts.length - 1);
      try {
        Path temp = Path.of(partialName());
        Files.createSymbolicLink(w.at().resolve(temp), Path.of(target));
        place(w, temp, Path.of(parts[parts.length - 1]));
      } finally {
        release(w.opened(), w.made(), false);
      }
    }

    @Override
    void hardLink(String existing, String name) throws IOException {
      String[] from = existing.split("/", -1);
      Walked src = walk(from, from.length - 1);
      try {
        Path fromName = Path.of(from[from.length - 1]);
        BasicFileAttributes attrs = attributes(src.dir(), fromName);
        if (attrs == null || !attrs.isRegularFile()) {
          throw precondition(src.at().resolve(fromName), "is not a regular file to link to");
        }
        String[] parts = name.split("/", -1);
        Walked w = walk(parts, parts.length - 1);
        try {
          Path temp = Path.of(partialName());
          Files.createLink(w.at().resolve(temp), src.at().resolve(fromName));
          place(w, temp, Path.of(parts[parts.length - 1]));
        } finally {
          release(w.opened(), w.made(), false);
        }
      } finally {
        release(src.opened(), src.made(), false);
      }
    }

    /** Renames the link {@code temp} onto {@code name}, both in w's directory; removes it on failure. */
    private static void place(Walked w, Path temp, Path name) throws IOException {
      try {
        w.dir().move(temp, w.dir(), name);
      } catch (IOException e) {
        try {
          w.dir().deleteFile(temp);
        } catch (IOException gone) {
          // Nothing to remove.
        }
        if (isDirectory(w.dir(), name)) {
          throw precondition(w.at().resolve(name), "is a directory");
        }
        throw e;
      }
    }

    @Override
    Tree tree(String title) throws IOException {
      String[] parts = title.split("/", -1);
      Walked w = walk(parts, parts.length - 1);
      try {
        Path name = Path.of(parts[parts.length - 1]);
        Path temp = Path.of(partialName());
        Path tempAt = w.at().resolve(temp);
        // By path (no mkdirat), then opened from the parent without following a link.
        Files.createDirectory(tempAt);
        SecureDirectoryStream<Path> inner;
        try {
          inner = w.dir().newDirectoryStream(temp, NOFOLLOW);
        } catch (IOException e) {
          removeQuietly(w.dir(), temp);
          throw e;
        }
        return new SecureTree(w.at().resolve(name), new Secure(tempAt, inner), w, temp, name);
      } catch (IOException | RuntimeException e) {
        release(w.opened(), w.made(), true);
        throw e;
      }
    }

    private static BasicFileAttributes attributes(SecureDirectoryStream<Path> dir, Path name) {
      try {
        return dir.getFileAttributeView(name, BasicFileAttributeView.class, NOFOLLOW)
            .readAttributes();
      } catch (IOException absent) {
        return null;
      }
    }

    /** Removes {@code name} in {@code parent}, a directory with all it holds; no link followed. */
    private static void removeQuietly(SecureDirectoryStream<Path> parent, Path name) {
      try {
        remove(parent, name);
      } catch (IOException ignored) {
        // Someone else's now, or gone.
      }
    }

    private static void remove(SecureDirectoryStream<Path> parent, Path name) throws IOException {
      BasicFileAttributes attrs = attributes(parent, name);
      if (attrs == null) {
        return;
      }
      if (!attrs.isDirectory()) {
        parent.deleteFile(name);
        return;
      }
      try (SecureDirectoryStream<Path> dir = parent.newDirectoryStream(name, NOFOLLOW)) {
        List<Path> children = new ArrayList<>();
        for (Path child : dir) {
          children.add(child.getFileName());
        }
        for (Path child : children) {
          remove(dir, child);
        }
      }
      parent.deleteDirectory(name);
    }

    private static final class SecureTree extends Tree {
      private final Walked parent;
      private final Path temp;
      private final Path name;
      private boolean done;

      SecureTree(Path path, OutputDir root, Walked parent, Path temp, Path name) {
        super(path, root);
        this.parent = parent;
        this.temp = temp;
        this.name = name;
      }

      @Override
      void commit() throws IOException {
        SecureDirectoryStream<Path> dir = parent.dir();
        Path aside = null;
        try {
          root.close();
          if (attributes(dir, name) != null) {
            aside = Path.of(partialName());
            dir.move(name, dir, aside);
          }
          try {
            dir.move(temp, dir, name);
          } catch (IOException e) {
            if (aside != null) {
              try {
                dir.move(aside, dir, name);
              } catch (IOException lost) {
                e.addSuppressed(lost);
              }
            }
            throw e;
          }
        } catch (IOException | RuntimeException e) {
          discard();
          throw e;
        }
        done = true;
        if (aside != null) {
          removeQuietly(dir, aside);
        }
        release(parent.opened(), parent.made(), false);
      }

      @Override
      void discard() {
        if (done) {
          return;
        }
        done = true;
        closeQuietly(root);
        removeQuietly(parent.dir(), temp);
        release(parent.opened(), parent.made(), true);
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

      @Override
      SeekableByteChannel reopen() throws IOException {
        return dir.newByteChannel(partial, Set.of(StandardOpenOption.READ, NOFOLLOW));
      }

      @Override
      void setLastModified(FileTime time) throws IOException {
        dir.getFileAttributeView(partial, BasicFileAttributeView.class, NOFOLLOW)
            .setTimes(time, time, null);
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

    /** The first {@code count} of {@code parts} below base, checked, made if missing. */
    private Path walk(String[] parts, int count, List<Path> made) throws IOException {
      Path at = base;
      for (int i = 0; i < count; i++) {
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
      return at;
    }

    @Override
    Slot slot(String title, int mode, boolean scratch) throws IOException {
      String[] parts = title.split("/", -1);
      List<Path> made = new ArrayList<>();
      try {
        Path at = walk(parts, parts.length - 1, made);
        Path target = at.resolve(parts[parts.length - 1]);
        BasicFileAttributes attrs = lstat(target);
        if (!scratch && attrs != null && attrs.isDirectory()) {
          throw precondition(target, "is a directory");
        }
        Path partial = at.resolve(partialName());
        return new CheckedSlot(
            target, Files.newByteChannel(partial, CREATE_PARTIAL, permissions(mode)), partial, made);
      } catch (IOException | RuntimeException e) {
        removeMade(made);
        throw e;
      }
    }

    @Override
    void makeDirectories(String name) throws IOException {
      String[] parts = name.split("/", -1);
      walk(parts, parts.length, new ArrayList<>());
    }

    @Override
    void symlink(String name, String target) throws IOException {
      String[] parts = name.split("/", -1);
      Path at = walk(parts, parts.length - 1, new ArrayList<>());
      Path temp = at.resolve(partialName());
      Files.createSymbolicLink(temp, Path.of(target));
      place(temp, at.resolve(parts[parts.length - 1]));
    }

    @Override
    void hardLink(String existing, String name) throws IOException {
      String[] from = existing.split("/", -1);
      Path source = walk(from, from.length - 1, new ArrayList<>()).resolve(from[from.length - 1]);
      BasicFileAttributes attrs = lstat(source);
      if (attrs == null || !attrs.isRegularFile()) {
        throw precondition(source, "is not a regular file to link to");
      }
      String[] parts = name.split("/", -1);
      Path at = walk(parts, parts.length - 1, new ArrayList<>());
      Path temp = at.resolve(partialName());
      Files.createLink(temp, source);
      place(temp, at.resolve(parts[parts.length - 1]));
    }

    /** Renames the link {@code temp} onto {@code target}; removes it on failure. */
    private static void place(Path temp, Path target) throws IOException {
      try {
        BasicFileAttributes attrs = lstat(target);
        if (attrs != null && attrs.isDirectory()) {
          throw precondition(target, "is a directory");
        }
        Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
      } catch (IOException | RuntimeException e) {
        Files.deleteIfExists(temp);
        throw e;
      }
    }

    @Override
    Tree tree(String title) throws IOException {
      String[] parts = title.split("/", -1);
      List<Path> made = new ArrayList<>();
      try {
        Path at = walk(parts, parts.length - 1, made);
        Path temp = Files.createDirectory(at.resolve(partialName()));
        return new CheckedTree(at.resolve(parts[parts.length - 1]), new Checked(temp), temp, made);
      } catch (IOException | RuntimeException e) {
        removeMade(made);
        throw e;
      }
    }

    /** Removes {@code p}, a directory with all it holds; links are removed, not followed. */
    private static void removeQuietly(Path p) {
      try {
        if (lstat(p) == null) {
          return;
        }
        try (Stream<Path> all = Files.walk(p)) {
          for (Path q : all.sorted(Comparator.reverseOrder()).toList()) {
            Files.deleteIfExists(q);
          }
        }
      } catch (IOException | UncheckedIOException ignored) {
        // Someone else's now, or gone.
      }
    }

    private static final class CheckedTree extends Tree {
      private final Path temp;
      private final List<Path> made;
      private boolean done;

      CheckedTree(Path path, OutputDir root, Path temp, List<Path> made) {
        super(path, root);
        this.temp = temp;
        this.made = made;
      }

      @Override
      void commit() throws IOException {
        Path aside = null;
        try {
          if (lstat(path) != null) {
            aside = path.resolveSibling(partialName());
            Files.move(path, aside, StandardCopyOption.ATOMIC_MOVE);
          }
          try {
            Files.move(temp, path, StandardCopyOption.ATOMIC_MOVE);
          } catch (IOException e) {
            if (aside != null) {
              try {
                Files.move(aside, path, StandardCopyOption.ATOMIC_MOVE);
              } catch (IOException lost) {
                e.addSuppressed(lost);
              }
            }
            throw e;
          }
        } catch (IOException | RuntimeException e) {
          discard();
          throw e;
        }
        done = true;
        if (aside != null) {
          removeQuietly(aside);
        }
      }

      @Override
      void discard() {
        if (done) {
          return;
        }
        done = true;
        removeQuietly(temp);
        removeMade(made);
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

      @Override
      SeekableByteChannel reopen() throws IOException {
        return Files.newByteChannel(partial, StandardOpenOption.READ, NOFOLLOW);
      }

      @Override
      void setLastModified(FileTime time) throws IOException {
        Files.getFileAttributeView(partial, BasicFileAttributeView.class, NOFOLLOW)
            .setTimes(time, time, null);
      }
    }

    @Override
    public void close() {}
  }
}
