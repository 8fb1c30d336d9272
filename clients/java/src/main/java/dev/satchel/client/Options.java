package dev.satchel.client;

import dev.satchel.v1.Progress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
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

    private Builder() {}

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

    public Options build() {
      return new Options(this);
    }
  }
}
