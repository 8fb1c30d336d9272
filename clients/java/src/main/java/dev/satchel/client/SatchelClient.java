package dev.satchel.client;

import com.google.protobuf.ByteString;
import dev.satchel.v1.ArtifactSpec;
import dev.satchel.v1.AttachHeader;
import dev.satchel.v1.AttachRequest;
import dev.satchel.v1.AttachResponse;
import dev.satchel.v1.DiscoverRequest;
import dev.satchel.v1.DiscoverResponse;
import dev.satchel.v1.FileChunk;
import dev.satchel.v1.FileSpec;
import dev.satchel.v1.Progress;
import dev.satchel.v1.PullRequest;
import dev.satchel.v1.PullResponse;
import dev.satchel.v1.PushHeader;
import dev.satchel.v1.PushRequest;
import dev.satchel.v1.PushResponse;
import dev.satchel.v1.PushResult;
import dev.satchel.v1.ResolveRequest;
import dev.satchel.v1.ResolveResponse;
import dev.satchel.v1.SatchelServiceGrpc;
import dev.satchel.v1.ServerInfoRequest;
import dev.satchel.v1.ServerInfoResponse;
import dev.satchel.v1.Target;
import dev.satchel.v1.VerifyRequest;
import dev.satchel.v1.VerifyResponse;
import dev.satchel.v1.WatchReferrersRequest;
import dev.satchel.v1.WatchReferrersResponse;
import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;
import java.util.function.Function;

/**
 * A client for satcheld. Methods mirror the CLI: {@code satchel push REF FILE...} is {@link
 * #push(String, List, Options)}, and so on.
 *
 * <p>Files are streamed from disk in chunks of the daemon's {@code max_chunk_bytes} (1 MiB by
 * default; see {@link #serverInfo()}), honouring gRPC flow control, and pulled files are streamed
 * to disk; no call holds a whole file in memory.
 *
 * <p>Errors the daemon reports surface as {@link StatusRuntimeException}; {@code
 * e.getStatus().getCode()} is the gRPC status code (for example {@code NOT_FOUND} for a missing
 * tag, {@code INVALID_ARGUMENT} for a malformed reference). The client's own checks use the same
 * codes: INVALID_ARGUMENT for a file name {@link Titles} refuses, FAILED_PRECONDITION for a link or
 * file in the output directory where a pulled file needs a directory, or a directory at its name,
 * DATA_LOSS for pulled bytes that do not match their layer, DEADLINE_EXCEEDED for a call past its
 * deadline ({@link #connect(String, Duration)}, {@link Options.Builder#deadline}), INVALID_ARGUMENT
 * naming the path for a file to push or attach that is missing (its {@link NoSuchFileException} is
 * the cause). Other local file system failures are {@link IOException}s.
 */
public final class SatchelClient implements AutoCloseable {
  /**
   * The chunk size (1 MiB) push and attach send when the daemon's {@link #serverInfo()} names none
   * (a daemon older than ServerInfo): clients/conformance/limits.json's {@code
   * server_info_defaults.max_chunk_bytes}. Otherwise the daemon's {@code max_chunk_bytes} is used.
   */
  public static final int CHUNK_SIZE = 1 << 20;

  /**
   * The size (256 MiB) under which push and attach hash a file before sending it when the daemon's
   * {@link #serverInfo()} names none (a daemon older than ServerInfo): limits.json's {@code
   * server_info_defaults.hash_first_below}. Otherwise the daemon's {@code hash_first_below} (its
   * {@code upload_monolithic_max}) is the threshold, unless {@link Options.Builder#hashFirst}
   * says otherwise. A file sent with its sha256 digest and size lets the daemon skip uploading a
   * blob the registry already has; larger files are by default streamed straight away, read once,
   * and hashed by the daemon.
   */
  public static final long HASH_FIRST_BELOW = 256L << 20;

  /**
   * The largest message a daemon older than ServerInfo sends (8 MiB): limits.json's {@code
   * server_info_defaults.max_message_bytes}.
   */
  public static final int DEFAULT_MAX_MESSAGE_BYTES = 8 << 20;

  /**
   * The largest message this client accepts (8 MiB: a pulled manifest may be 4 MiB plus its
   * descriptor), limits.json's {@code client_receive_limit_bytes}; at least the daemon's {@code
   * max_message_bytes}.
   */
  public static final int MAX_MESSAGE_SIZE = 8 << 20;

  /** What a daemon older than ServerInfo (UNIMPLEMENTED) is taken to answer. */
  static final ServerInfoResponse SERVER_INFO_DEFAULTS =
      ServerInfoResponse.newBuilder()
          .setMaxChunkBytes(CHUNK_SIZE)
          .setMaxMessageBytes(DEFAULT_MAX_MESSAGE_BYTES)
          .setHashFirstBelow(HASH_FIRST_BELOW)
          .build();

  private final ManagedChannel ownedChannel;
  private final SatchelServiceGrpc.SatchelServiceBlockingStub blocking;
  private final SatchelServiceGrpc.SatchelServiceStub async;
  /** The deadline of calls whose options set none; null for none. */
  private final Duration defaultDeadline;
  /** The daemon's ServerInfo answer, asked once (see {@link #serverInfo()}); null until then. */
  private volatile ServerInfoResponse serverInfo;
  private final Object serverInfoLock = new Object();

  /**
   * Uses a channel the caller manages; {@link #close()} then leaves it open.
   *
   * @param channel a channel to satcheld
   */
  public SatchelClient(Channel channel) {
    this(channel, null, null);
  }

  /**
   * Uses a channel the caller manages, with a default deadline for every call (see {@link
   * #connect(String, Duration)}).
   */
  public SatchelClient(Channel channel, Duration defaultDeadline) {
    this(channel, null, checkedDeadline(defaultDeadline));
  }

  private SatchelClient(Channel channel, ManagedChannel owned, Duration defaultDeadline) {
    this.ownedChannel = owned;
    this.defaultDeadline = defaultDeadline;
    // Set on the stubs too, so that a caller's channel gets the same limit.
    this.blocking =
        SatchelServiceGrpc.newBlockingStub(channel).withMaxInboundMessageSize(MAX_MESSAGE_SIZE);
    this.async = SatchelServiceGrpc.newStub(channel).withMaxInboundMessageSize(MAX_MESSAGE_SIZE);
  }

  /**
   * Connects to satcheld at an address as the CLI's {@code --addr} takes it: {@code
   * unix:///path/to.sock} or a bare absolute path {@code /path/to.sock} (a Unix socket), {@code
   * http://host:port}, {@code https://host:port} (TLS with the system's trust store) or a bare
   * {@code host:port} (plain text). An empty address means {@code $SATCHEL_ADDR} when that is set
   * and not empty, else the daemon's default socket ({@code
   * $XDG_RUNTIME_DIR/satchel/satcheld.sock}, else {@code $TMPDIR/satchel-<uid>/satcheld.sock}).
   * Connecting is lazy: a daemon that is not there shows as UNAVAILABLE on the first call.
   */
  public static SatchelClient connect(String address) {
    return open(address, null);
  }

  /**
   * Connects as {@link #connect(String)} does, with a default deadline: each call that its options
   * give no {@link Options.Builder#deadline} of its own fails with DEADLINE_EXCEEDED (and is
   * cancelled) once it has run that long.
   */
  public static SatchelClient connect(String address, Duration defaultDeadline) {
    return open(address, checkedDeadline(defaultDeadline));
  }

  private static Duration checkedDeadline(Duration d) {
    if (d.isNegative() || d.isZero()) {
      throw new IllegalArgumentException("the deadline must be positive");
    }
    return d;
  }

  private static SatchelClient open(String address, Duration defaultDeadline) {
    return open(address, defaultDeadline, System.getenv());
  }

  /** {@link #connect(String)} with {@code env} standing for the process's environment. */
  static SatchelClient open(String address, Duration defaultDeadline, Map<String, String> env) {
    ManagedChannel channel = Channels.open(Channels.resolve(address, env), MAX_MESSAGE_SIZE);
    return new SatchelClient(channel, channel, defaultDeadline);
  }

  /** The deadline of a call with these options, from now; null for none. */
  private Deadline deadline(Options options) {
    Duration d = options.deadline().orElse(defaultDeadline);
    return d == null ? null : Deadline.after(d.toNanos(), TimeUnit.NANOSECONDS);
  }

  private static <S extends io.grpc.stub.AbstractStub<S>> S withDeadline(S stub, Deadline d) {
    return d == null ? stub : stub.withDeadline(d);
  }

  /**
   * DEADLINE_EXCEEDED for a call that ended CANCELLED because its deadline passed: the daemon
   * answers a deadline it notices first with CANCELLED ("Timeout expired").
   */
  static StatusRuntimeException surfaced(StatusRuntimeException e, Deadline d) {
    if (d != null && d.isExpired() && e.getStatus().getCode() == Status.Code.CANCELLED) {
      return Status.DEADLINE_EXCEEDED
          .withDescription("deadline exceeded: " + e.getStatus().getDescription())
          .withCause(e)
          .asRuntimeException();
    }
    return e;
  }

  /** The generated blocking stub, for the RPCs this class does not wrap. */
  public SatchelServiceGrpc.SatchelServiceBlockingStub blockingStub() {
    return blocking;
  }

  /** The generated asynchronous stub, for the RPCs this class does not wrap. */
  public SatchelServiceGrpc.SatchelServiceStub asyncStub() {
    return async;
  }

  /**
   * The daemon's version and limits, asked with the ServerInfo RPC on first use and kept for the
   * client's lifetime (one call per client, however many threads ask at once). Push and attach
   * use its {@code max_chunk_bytes} as their chunk size and its {@code hash_first_below} as the
   * automatic hash-first threshold. A daemon older than ServerInfo (UNIMPLEMENTED) is taken to
   * answer clients/conformance/limits.json's {@code server_info_defaults} ({@link #CHUNK_SIZE},
   * {@link #DEFAULT_MAX_MESSAGE_BYTES}, {@link #HASH_FIRST_BELOW}, no version). Other errors are
   * thrown, and the next call asks again.
   */
  public ServerInfoResponse serverInfo() {
    return serverInfo(deadline(Options.DEFAULTS));
  }

  private ServerInfoResponse serverInfo(Deadline deadline) {
    ServerInfoResponse known = serverInfo;
    if (known != null) {
      return known;
    }
    synchronized (serverInfoLock) {
      if (serverInfo == null) {
        try {
          serverInfo =
              withDeadline(blocking, deadline).serverInfo(ServerInfoRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
          if (e.getStatus().getCode() != Status.Code.UNIMPLEMENTED) {
            throw surfaced(e, deadline);
          }
          serverInfo = SERVER_INFO_DEFAULTS;
        }
      }
      return serverInfo;
    }
  }

  /** The chunk size of uploads: the daemon's max_chunk_bytes, or CHUNK_SIZE if it names none. */
  static int chunkSize(ServerInfoResponse info) {
    // Capped at half this client's receive limit, to bound the buffer a push holds.
    long max = Integer.toUnsignedLong(info.getMaxChunkBytes());
    return max == 0 ? CHUNK_SIZE : (int) Math.min(max, MAX_MESSAGE_SIZE / 2);
  }

  /** The automatic hash-first threshold: the daemon's hash_first_below, else HASH_FIRST_BELOW. */
  static long hashFirstBelow(ServerInfoResponse info) {
    return info.getHashFirstBelow() == 0 ? HASH_FIRST_BELOW : info.getHashFirstBelow();
  }

  /** Pushes files as an artifact with default options. */
  public PushResult push(String reference, Path... files) throws IOException {
    return push(reference, List.of(files), Options.DEFAULTS);
  }

  /**
   * Pushes files as a standalone artifact, like {@code satchel push REF FILE...}. Each file becomes
   * a layer titled with its file name. Uses artifactType, annotations, mediaType, tags, plainHttp,
   * ociLayout, hashFirst and progress from the options.
   *
   * <p>Files smaller than the daemon's {@code hash_first_below} ({@link #serverInfo()}; by
   * default, see {@link Options.Builder#hashFirst(boolean)}) are read once to hash them before the
   * call starts, so that the daemon can skip blobs the registry already has; {@link
   * PushResult#getBlobsSkipped()} counts them. A directory is packed as the ORAS CLI packs one (a
   * tar+gzip layer of media type {@link Directories#MEDIA_TYPE} unless the options name one, which
   * pull unpacks; see {@link Directories}) into a temporary file removed after the call. A path
   * that is missing or neither a regular file nor a directory is
   * INVALID_ARGUMENT naming its path, with the {@link NoSuchFileException} as the cause.
   */
  public PushResult push(String reference, List<Path> files, Options options) throws IOException {
    return upload(PUSH, reference, files, options);
  }

  /**
   * Attaches files to a subject, like {@code satchel attach --artifact-type T REF FILE...}. The
   * options' artifactType is required (the daemon answers INVALID_ARGUMENT without it). Files are
   * sent, and hashed first, as by {@link #push(String, List, Options)}.
   */
  public PushResult attach(String subject, List<Path> files, Options options) throws IOException {
    return upload(ATTACH, subject, files, options);
  }

  /**
   * Lists the referrers of a subject, like {@code satchel discover REF}. Each referrer's descriptor
   * carries digest, artifact_type and annotations. Uses artifactType (a filter), depth, plainHttp
   * and ociLayout; with verifyKeys, each direct referrer's verification says whether one of them
   * signed it.
   */
  public DiscoverResponse discover(String subject, Options options) {
    Deadline deadline = deadline(options);
    try {
      return withDeadline(blocking, deadline)
          .discover(
              DiscoverRequest.newBuilder()
                  .setSubject(target(subject, options))
                  .setArtifactType(options.artifactType())
                  .setDepth(options.depth())
                  .setVerify(!options.verifyKeys().isEmpty())
                  .addAllVerifyKeys(pems(options))
                  .build());
    } catch (StatusRuntimeException e) {
      throw surfaced(e, deadline);
    }
  }

  /**
   * Watches the referrers of a subject, like {@code satchel discover --watch REF}: the iterator
   * yields the current set first, then each referrer that appears or disappears, and the whole set
   * again, with resync set, when the watcher fell behind; hasNext() blocks until the next event.
   * Uses artifactType (a filter), plainHttp and ociLayout. Only options.deadline() ends the watch
   * by itself (the client's default deadline does not apply); otherwise run it in a {@link
   * Context.CancellableContext} and cancel that.
   */
  public Iterator<WatchReferrersResponse> watchReferrers(String subject, Options options) {
    Deadline deadline =
        options.deadline().map(d -> Deadline.after(d.toNanos(), TimeUnit.NANOSECONDS)).orElse(null);
    return withDeadline(blocking, deadline)
        .watchReferrers(
            WatchReferrersRequest.newBuilder()
                .setSubject(target(subject, options))
                .setArtifactType(options.artifactType())
                .build());
  }

  /** Resolves a tag or digest reference to its manifest descriptor, like {@code satchel resolve}. */
  public ResolveResponse resolve(String reference, Options options) {
    Deadline deadline = deadline(options);
    try {
      return withDeadline(blocking, deadline)
          .resolve(ResolveRequest.newBuilder().setTarget(target(reference, options)).build());
    } catch (StatusRuntimeException e) {
      throw surfaced(e, deadline);
    }
  }

  /**
   * Pulls an artifact's files into options.outputDir() (made when the first file starts, so a pull
   * that fails before, for a missing tag or an unsafe title, leaves none), like {@code satchel
   * pull -o DIR REF}. Before the first byte is written every title of the manifest is checked with
   * {@link Titles#checkAll} (INVALID_ARGUMENT), and only files the manifest names are written, each
   * once (a header for another name is the daemon breaking the protocol: INTERNAL). Below the output directory no symbolic link is followed (FAILED_PRECONDITION,
   * see {@link OutputDir}). Each file is written to a partial file beside its final name, created
   * exclusively under a random name, and renamed once the daemon has verified its digest and this
   * client has checked the digest (sha256 or sha512) and size of the bytes it wrote against the
   * layer descriptor; a mismatch is DATA_LOSS and leaves no file. A link at the final name is
   * replaced, never written through. A directory layer ({@link Directories#isDirectory}) is
   * unpacked into the directory its title names, replacing what stood there ({@link
   * Directories}); the path in the result is that directory's.
   */
  public PullResult pull(String reference, Options options) throws IOException {
    return pull(
        PullRequest.newBuilder()
            .setTarget(target(reference, options))
            .addAllVerifyKeys(pems(options))
            .build(),
        options);
  }

  /**
   * Checks that the manifest a reference names is signed (by cosign) under one of
   * options.verifyKeys(), or the keys the daemon's policy trusts for it, like {@code satchel
   * verify --key PUB REF}. A refusal is a StatusRuntimeException: FAILED_PRECONDITION when nothing
   * checkable is there (unsigned, not a bundle, no key), PERMISSION_DENIED when a signature is
   * there but not acceptable (another key, altered bytes, a signature of another digest).
   */
  public VerifyResponse verify(String reference, Options options) {
    Deadline deadline = deadline(options);
    try {
      return withDeadline(blocking, deadline)
          .verify(
              VerifyRequest.newBuilder()
                  .setTarget(target(reference, options))
                  .addAllKeys(pems(options))
                  .build());
    } catch (StatusRuntimeException e) {
      throw surfaced(e, deadline);
    }
  }

  private static List<ByteString> pems(Options options) {
    return options.verifyKeys().stream().map(ByteString::copyFrom).toList();
  }

  /**
   * Pulls the newest attachment of options.artifactType() on a subject, like {@code satchel pull
   * --subject REF --artifact-type T}.
   */
  public PullResult pullAttachment(String subject, Options options) throws IOException {
    return pull(
        PullRequest.newBuilder()
            .setSubject(target(subject, options))
            .setArtifactType(options.artifactType())
            .addAllVerifyKeys(pems(options))
            .build(),
        options);
  }

  /** Shuts the channel down, when this client opened it. */
  @Override
  public void close() {
    if (ownedChannel == null) {
      return;
    }
    ownedChannel.shutdown();
    try {
      if (!ownedChannel.awaitTermination(5, TimeUnit.SECONDS)) {
        ownedChannel.shutdownNow();
      }
    } catch (InterruptedException e) {
      ownedChannel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private static Target target(String reference, Options options) {
    return Target.newBuilder()
        .setReference(reference)
        .setPlainHttp(options.plainHttp())
        .setOciLayout(options.ociLayout())
        .build();
  }

  /**
   * What push and attach send: the artifact's spec, the chunk size, where each file's bytes are
   * read from (a directory's archive in its place) and the archives to remove after the call.
   */
  private record Plan(ArtifactSpec spec, int chunkSize, List<Path> sources, List<Path> archives) {
    void removeArchives() {
      remove(archives);
    }
  }

  private static void remove(List<Path> archives) {
    for (Path archive : archives) {
      try {
        Files.deleteIfExists(archive);
      } catch (IOException ignored) {
        // A temporary file: nothing more to do.
      }
    }
  }

  /**
   * Checks the titles and that every file is there before asking the daemon's {@link
   * #serverInfo()}, packs the directories ({@link Pack}) and hashes the files below its threshold
   * (as the options say).
   */
  private Plan plan(List<Path> files, Options options, Deadline deadline) throws IOException {
    List<String> titles = titles(files, options);
    List<Boolean> directories = new ArrayList<>();
    List<Long> sizes = new ArrayList<>();
    for (Path file : files) {
      boolean directory = Files.isDirectory(file);
      directories.add(directory);
      sizes.add(directory ? 0 : size(file));
    }
    ServerInfoResponse info = serverInfo(deadline);
    long hashBelow = hashFirstBelow(info);
    ArtifactSpec.Builder spec =
        ArtifactSpec.newBuilder()
            .setArtifactType(options.artifactType())
            .putAllAnnotations(options.annotations())
            .addAllTags(options.tags());
    List<Path> sources = new ArrayList<>();
    List<Path> archives = new ArrayList<>();
    byte[] buf = null;
    try {
      for (int i = 0; i < files.size(); i++) {
        FileSpec.Builder f = FileSpec.newBuilder().setName(titles.get(i));
        if (directories.get(i)) {
          Pack.Packed packed = Pack.pack(files.get(i), titles.get(i));
          archives.add(packed.file());
          sources.add(packed.file());
          String mediaType = options.mediaType();
          f.setMediaType(mediaType.isEmpty() ? Directories.MEDIA_TYPE : mediaType)
              .setSize(packed.size())
              .setDigest(packed.digest())
              .putAllAnnotations(packed.annotations());
        } else {
          sources.add(files.get(i));
          f.setMediaType(options.mediaType()).setSize(sizes.get(i));
          if (options.hashes(f.getSize(), hashBelow)) {
            if (buf == null) {
              buf = new byte[CHUNK_SIZE];
            }
            hash(files.get(i), f, buf);
          }
        }
        spec.addFiles(f);
      }
    } catch (IOException | RuntimeException e) {
      remove(archives);
      throw e;
    }
    return new Plan(spec.build(), chunkSize(info), sources, archives);
  }

  /** A file's size; INVALID_ARGUMENT if it is missing or neither a regular file nor a directory. */
  private static long size(Path file) throws IOException {
    try {
      if (!Files.isRegularFile(file)) {
        if (!Files.exists(file)) {
          throw new NoSuchFileException(file.toString());
        }
        throw new NoSuchFileException(
            file.toString(), null, "not a regular file or a directory");
      }
      return Files.size(file);
    } catch (NoSuchFileException e) {
      throw missingFile(file, e);
    }
  }

  /**
   * A file the caller named that is not there: INVALID_ARGUMENT (the caller's argument, not
   * NOT_FOUND, which means something the registry lacks), naming the path, with the {@link
   * NoSuchFileException} as the cause (clients/conformance/behaviour.json).
   */
  static StatusRuntimeException missingFile(Path file, NoSuchFileException cause) {
    String why = cause.getReason() == null ? "no such file" : cause.getReason();
    return Status.INVALID_ARGUMENT
        .withDescription(file + ": " + why)
        .withCause(cause)
        .asRuntimeException();
  }

  /** Opens a file to read; INVALID_ARGUMENT if it is gone. */
  private static InputStream read(Path file) throws IOException {
    try {
      return Files.newInputStream(file);
    } catch (NoSuchFileException e) {
      throw missingFile(file, e);
    }
  }

  /** The files' titles (options.titles(), else their file names), checked with Titles.checkAll. */
  private static List<String> titles(List<Path> files, Options options) {
    List<String> titles = options.titles().orElse(null);
    if (titles == null) {
      titles = new ArrayList<>();
      for (Path file : files) {
        Path name = file.getFileName();
        titles.add(name == null ? "" : name.toString());
      }
    } else if (titles.size() != files.size()) {
      throw Status.INVALID_ARGUMENT
          .withDescription(titles.size() + " titles for " + files.size() + " files")
          .asRuntimeException();
    }
    Titles.checkAll(titles);
    return titles;
  }

  /**
   * Sets spec's digest ("sha256:" and hex) and size from the file's bytes, read in buf-sized
   * pieces, so the daemon can verify them and skip a blob the registry already has.
   */
  private static void hash(Path file, FileSpec.Builder spec, byte[] buf) throws IOException {
    MessageDigest sha;
    try {
      sha = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    long size = 0;
    try (InputStream in = read(file)) {
      int n;
      while ((n = in.read(buf)) > 0) {
        sha.update(buf, 0, n);
        size += n;
      }
    }
    spec.setDigest("sha256:" + HexFormat.of().formatHex(sha.digest())).setSize(size);
  }

  // ---- Push and Attach: a header, then every file's chunks, sent as flow control allows.

  /**
   * What Push and Attach differ in: the call, the header naming the target (Push's target,
   * Attach's subject) and the artifact, the request a chunk rides in, and what an answer carries.
   */
  private record UploadRpc<Req, Resp>(
      BiFunction<SatchelServiceGrpc.SatchelServiceStub, StreamObserver<Resp>, StreamObserver<Req>>
          start,
      BiFunction<Target, ArtifactSpec, Req> header,
      Function<FileChunk, Req> wrapChunk,
      Function<Resp, Progress> progressOf,
      Function<Resp, PushResult> resultOf) {}

  private static final UploadRpc<PushRequest, PushResponse> PUSH =
      new UploadRpc<>(
          SatchelServiceGrpc.SatchelServiceStub::push,
          (target, spec) ->
              PushRequest.newBuilder()
                  .setHeader(PushHeader.newBuilder().setTarget(target).setArtifact(spec))
                  .build(),
          chunk -> PushRequest.newBuilder().setChunk(chunk).build(),
          r -> r.hasProgress() ? r.getProgress() : null,
          r -> r.hasResult() ? r.getResult() : null);

  private static final UploadRpc<AttachRequest, AttachResponse> ATTACH =
      new UploadRpc<>(
          SatchelServiceGrpc.SatchelServiceStub::attach,
          (subject, spec) ->
              AttachRequest.newBuilder()
                  .setHeader(AttachHeader.newBuilder().setSubject(subject).setArtifact(spec))
                  .build(),
          chunk -> AttachRequest.newBuilder().setChunk(chunk).build(),
          r -> r.hasProgress() ? r.getProgress() : null,
          r -> r.hasResult() ? r.getResult() : null);

  private <Req, Resp> PushResult upload(
      UploadRpc<Req, Resp> rpc, String reference, List<Path> files, Options options)
      throws IOException {
    Deadline deadline = deadline(options);
    Plan plan = plan(files, options, deadline);
    try {
      return upload(rpc, reference, plan, options, deadline);
    } finally {
      plan.removeArchives();
    }
  }

  private <Req, Resp> PushResult upload(
      UploadRpc<Req, Resp> rpc, String reference, Plan plan, Options options, Deadline deadline)
      throws IOException {
    Req header = rpc.header().apply(target(reference, options), plan.spec());
    Upload<Req, Resp> call = new Upload<>(rpc.progressOf(), rpc.resultOf(), options);
    rpc.start().apply(withDeadline(async, deadline), call);
    try {
      call.send(header);
      byte[] buf = new byte[plan.chunkSize()];
      for (int i = 0; i < plan.sources().size(); i++) {
        try (InputStream in = read(plan.sources().get(i))) {
          int n;
          while ((n = in.readNBytes(buf, 0, buf.length)) > 0) {
            FileChunk chunk =
                FileChunk.newBuilder().setFileIndex(i).setData(ByteString.copyFrom(buf, 0, n)).build();
            call.send(rpc.wrapChunk().apply(chunk));
          }
        }
      }
      call.requests.onCompleted();
      return call.awaitResult();
    } catch (StatusRuntimeException e) {
      call.requests.cancel("client failed", e);
      throw surfaced(e, deadline);
    } catch (IOException | RuntimeException e) {
      call.requests.cancel("client failed", e);
      throw e;
    } catch (InterruptedException e) {
      call.requests.cancel("interrupted", e);
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted");
    }
  }

  // ---- Pull: see Pull and OutputDir.

  private PullResult pull(PullRequest request, Options options) throws IOException {
    Deadline deadline = deadline(options);
    // The call belongs to this context, so leaving early (an I/O error) cancels it.
    Context.CancellableContext context = Context.current().withCancellation();
    Context previous = context.attach();
    Iterator<PullResponse> stream;
    try {
      stream = withDeadline(blocking, deadline).pull(request);
    } finally {
      context.detach(previous);
    }
    try (Pull pull = new Pull(options)) {
      return pull.run(stream);
    } catch (StatusRuntimeException e) {
      throw surfaced(Upload.rethrown(e), deadline);
    } finally {
      context.cancel(null);
    }
  }
}
