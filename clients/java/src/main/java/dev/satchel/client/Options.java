package dev.satchel.client;

import dev.satchel.v1.Progress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Options for {@link SatchelClient} calls, the counterparts of the CLI's flags. Immutable; build
 * one with {@link #builder()}. Each call reads only the options that apply to it.
 */
public final class Options {
  /** No options: HTTPS registries, default artifact type, current directory for pulls. */
  public static final Options DEFAULTS = builder().build();

  private final String artifactType;
  private final Map<String, String> annotations;
  private final boolean plainHttp;
  private final String ociLayout;
  private final Path outputDir;
  private final String mediaType;
  private final List<String> tags;
  private final int depth;
  private final Consumer<Progress> progress;
  private final Boolean hashFirst;
  private final Duration deadline;
  private final List<String> titles;
  private final List<byte[]> verifyKeys;

  private Options(Builder b) {
    this.artifactType = b.artifactType;
    this.annotations = Collections.unmodifiableMap(new LinkedHashMap<>(b.annotations));
    this.plainHttp = b.plainHttp;
    this.ociLayout = b.ociLayout;
    this.outputDir = b.outputDir;
    this.mediaType = b.mediaType;
    this.tags = List.copyOf(b.tags);
    this.depth = b.depth;
    this.progress = b.progress;
    this.hashFirst = b.hashFirst;
    this.deadline = b.deadline;
    this.titles = b.titles == null ? null : List.copyOf(b.titles);
    this.verifyKeys = b.verifyKeys.stream().map(byte[]::clone).toList();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The artifact type (push, attach; for discover and pull-by-subject a filter). Empty: none. */
  public String artifactType() {
    return artifactType;
  }

  /** Manifest annotations (push, attach). */
  public Map<String, String> annotations() {
    return annotations;
  }

  /** Whether to talk plain HTTP to the registry. */
  public boolean plainHttp() {
    return plainHttp;
  }

  /** An OCI image layout directory on the daemon's host; references then name a tag or digest. */
  public String ociLayout() {
    return ociLayout;
  }

  /** Where pull writes files. */
  public Path outputDir() {
    return outputDir;
  }

  /** The layer media type of pushed files; empty for the daemon's default. */
  public String mediaType() {
    return mediaType;
  }

  /** Extra tags to apply after push or attach. */
  public List<String> tags() {
    return tags;
  }

  /** Levels of referrers for discover (0 or 1: direct referrers only). */
  public int depth() {
    return depth;
  }

  /** Called with each Progress event of push, attach and pull; never null. */
  public Consumer<Progress> progress() {
    return progress;
  }

  /**
   * Whether push and attach hash files before sending them (see {@link Builder#hashFirst}): empty
   * when unset (automatic: files smaller than the daemon's {@code hash_first_below}, see {@link
   * SatchelClient#serverInfo()}), true for every file, false for none.
   */
  public Optional<Boolean> hashFirst() {
    return Optional.ofNullable(hashFirst);
  }

  /**
   * How long a call may take from its start (see {@link Builder#deadline}); empty for the client's
   * default deadline.
   */
  public Optional<Duration> deadline() {
    return Optional.ofNullable(deadline);
  }

  /** The files' titles in the artifact (see {@link Builder#titles}); empty for their file names. */
  public Optional<List<String>> titles() {
    return Optional.ofNullable(titles);
  }

  /**
   * PEM public keys (cosign.pub) a pull's artifact must be signed by, and the keys of verify; empty:
   * the daemon's policy decides.
   */
  public List<byte[]> verifyKeys() {
    return verifyKeys.stream().map(byte[]::clone).toList();
  }

  /**
   * Whether push and attach hash a file of {@code size} bytes before sending it to a daemon older
   * than ServerInfo (threshold {@link SatchelClient#HASH_FIRST_BELOW}).
   */
  boolean hashes(long size) {
    return hashes(size, SatchelClient.HASH_FIRST_BELOW);
  }

  /**
   * Whether push and attach hash a file of {@code size} bytes before sending it, when the daemon
   * says files below {@code hashFirstBelow} bytes are best hashed first.
   */
  boolean hashes(long size, long hashFirstBelow) {
    return hashFirst != null ? hashFirst : size < hashFirstBelow;
  }

  /** Builds {@link Options}. */
  public static final class Builder {
    private String artifactType = "";
    private final Map<String, String> annotations = new LinkedHashMap<>();
    private boolean plainHttp;
    private String ociLayout = "";
    private Path outputDir = Path.of(".");
    private String mediaType = "";
    private final List<String> tags = new ArrayList<>();
    private int depth;
    private Consumer<Progress> progress = p -> {};
    private Boolean hashFirst;
    private Duration deadline;
    private List<String> titles;
    private final List<byte[]> verifyKeys = new ArrayList<>();

    private Builder() {}

    /**
     * Adds a PEM public key (its bytes): verify accepts a signature by any key added, and pull and
     * pullAttachment take only what one of them signed (with pullAttachment, the newest attachment
     * that verifies; nothing is written when none does).
     */
    public Builder verifyKey(byte[] pem) {
      verifyKeys.add(Objects.requireNonNull(pem).clone());
      return this;
    }

    public Builder artifactType(String artifactType) {
      this.artifactType = Objects.requireNonNull(artifactType);
      return this;
    }

    public Builder annotation(String key, String value) {
      annotations.put(Objects.requireNonNull(key), Objects.requireNonNull(value));
      return this;
    }

    public Builder annotations(Map<String, String> annotations) {
      annotations.forEach(this::annotation);
      return this;
    }

    public Builder plainHttp(boolean plainHttp) {
      this.plainHttp = plainHttp;
      return this;
    }

    public Builder ociLayout(String dir) {
      this.ociLayout = Objects.requireNonNull(dir);
      return this;
    }

    public Builder outputDir(Path outputDir) {
      this.outputDir = Objects.requireNonNull(outputDir);
      return this;
    }

    public Builder mediaType(String mediaType) {
      this.mediaType = Objects.requireNonNull(mediaType);
      return this;
    }

    public Builder tag(String tag) {
      tags.add(Objects.requireNonNull(tag));
      return this;
    }

    public Builder depth(int depth) {
      if (depth < 0) {
        throw new IllegalArgumentException("depth must not be negative");
      }
      this.depth = depth;
      return this;
    }

    public Builder progress(Consumer<Progress> progress) {
      this.progress = Objects.requireNonNull(progress);
      return this;
    }

    /**
     * Whether push and attach read each file once to compute its sha256 digest before sending it
     * (the CLI's {@code --hash-first}). A file sent with its digest and size lets the daemon skip
     * the upload of a blob the registry already has (counted in {@code
     * PushResult.getBlobsSkipped()}; the daemon still reads and verifies the streamed bytes), at
     * the cost of reading the file twice. A file sent without a digest is read once and hashed by
     * the daemon on the way, and always uploaded.
     *
     * <p>Unset (the default), files smaller than the daemon's {@code hash_first_below} (its
     * ServerInfo answer, 256 MiB by default; {@link SatchelClient#HASH_FIRST_BELOW} for a daemon
     * older than ServerInfo) are hashed first and larger ones are not; true hashes every file;
     * false hashes none.
     */
    public Builder hashFirst(boolean hashFirst) {
      this.hashFirst = hashFirst;
      return this;
    }

    /**
     * The deadline of each call made with these options, from its start, overriding the client's
     * default ({@link SatchelClient#connect(String, Duration)}). A call still running then fails
     * with DEADLINE_EXCEEDED and is cancelled; a pull removes its partial file.
     */
    public Builder deadline(Duration deadline) {
      if (deadline.isNegative() || deadline.isZero()) {
        throw new IllegalArgumentException("deadline must be positive");
      }
      this.deadline = deadline;
      return this;
    }

    /**
     * The titles (file names in the artifact, {@code org.opencontainers.image.title}) of the files
     * push and attach send, one per file in order, instead of their file names; {@code
     * "dir/file.txt"} pulls into a subdirectory. Titles and file names alike must pass {@link
     * Titles#checkAll} (else INVALID_ARGUMENT before anything is read or sent).
     */
    public Builder titles(List<String> titles) {
      this.titles = List.copyOf(titles);
      return this;
    }

    public Options build() {
      return new Options(this);
    }
  }
}
