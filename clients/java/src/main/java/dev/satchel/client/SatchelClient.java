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
import dev.satchel.v1.Target;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
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
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A client for satcheld. Methods mirror the CLI: {@code satchel push REF FILE...} is {@link
 * #push(String, List, Options)}, and so on.
 *
 * <p>Files are streamed from disk in 1 MiB chunks, honouring gRPC flow control, and pulled files
 * are streamed to disk; no call holds a whole file in memory.
 *
 * <p>Errors the daemon reports surface as {@link StatusRuntimeException}; {@code
 * e.getStatus().getCode()} is the gRPC status code (for example {@code NOT_FOUND} for a missing
 * tag, {@code INVALID_ARGUMENT} for a malformed reference). The client's own checks use the same
 * codes: INVALID_ARGUMENT for a file name {@link Titles} refuses, FAILED_PRECONDITION for a link or
 * file in the output directory where a pulled file needs a directory, or a directory at its name,
 * DATA_LOSS for pulled bytes that do not match their layer, DEADLINE_EXCEEDED for a call past its
 * deadline ({@link #connect(String, Duration)}, {@link Options.Builder#deadline}). Local file system
 * failures are {@link IOException}s.
 */
public final class SatchelClient implements AutoCloseable {
  /** The largest chunk the API allows. */
  public static final int CHUNK_SIZE = 1 << 20;

  /**
   * The size (256 MiB) under which push and attach hash a file before sending it, as the CLI does,
   * unless {@link Options.Builder#hashFirst(boolean)} says otherwise. A file sent with its sha256
   * digest and size lets the daemon skip uploading a blob the registry already has; larger files
   * are by default streamed straight away, read once, and hashed by the daemon.
   */
  public static final long HASH_FIRST_BELOW = 256L << 20;

  /** The largest message accepted: a pulled manifest may be 4 MiB plus its descriptor. */
  public static final int MAX_MESSAGE_SIZE = 16 << 20;

  private final ManagedChannel ownedChannel;
  private final SatchelServiceGrpc.SatchelServiceBlockingStub blocking;
  private final SatchelServiceGrpc.SatchelServiceStub async;
  /** The deadline of calls whose options set none; null for none. */
  private final Duration defaultDeadline;

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
   * unix:///path/to.sock}, {@code http://host:port}, {@code https://host:port} (TLS with the
   * system's trust store) or a bare {@code host:port} (plain text).
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
    ChannelCredentials credentials = InsecureChannelCredentials.create();
    String target = address;
    if (address.startsWith("http://")) {
      target = stripSlash(address.substring("http://".length()));
    } else if (address.startsWith("https://")) {
      target = stripSlash(address.substring("https://".length()));
      credentials = TlsChannelCredentials.create();
    }
    var builder =
        Grpc.newChannelBuilder(target, credentials)
            // Pull manifests travel in one message; leave room above the 4 MiB default.
            .maxInboundMessageSize(MAX_MESSAGE_SIZE);
    if (target.startsWith("unix:")) {
      // grpc-java would send the socket path as :authority, which the daemon's HTTP/2 stack
      // rejects (PROTOCOL_ERROR); any valid host name will do.
      builder.overrideAuthority("localhost");
    }
    ManagedChannel channel = builder.build();
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

  private static String stripSlash(String s) {
    return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
  }

  /** The generated blocking stub, for the RPCs this class does not wrap. */
  public SatchelServiceGrpc.SatchelServiceBlockingStub blockingStub() {
    return blocking;
  }

  /** The generated asynchronous stub, for the RPCs this class does not wrap. */
  public SatchelServiceGrpc.SatchelServiceStub asyncStub() {
    return async;
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
   * <p>Files smaller than {@link #HASH_FIRST_BELOW} (by default; see {@link
   * Options.Builder#hashFirst(boolean)}) are read once to hash them before the call starts, so
   * that the daemon can skip blobs the registry already has; {@link PushResult#getBlobsSkipped()}
   * counts them.
   */
  public PushResult push(String reference, List<Path> files, Options options) throws IOException {
    Deadline deadline = deadline(options);
    PushRequest header =
        PushRequest.newBuilder()
            .setHeader(
                PushHeader.newBuilder()
                    .setTarget(target(reference, options))
                    .setArtifact(spec(files, options)))
            .build();
    return upload(
        withDeadline(async, deadline)::push,
        deadline,
        header,
        chunk -> PushRequest.newBuilder().setChunk(chunk).build(),
        r -> r.hasProgress() ? r.getProgress() : null,
        r -> r.hasResult() ? r.getResult() : null,
        files,
        options);
  }

  /**
   * Attaches files to a subject, like {@code satchel attach --artifact-type T REF FILE...}. The
   * options' artifactType is required (the daemon answers INVALID_ARGUMENT without it). Files are
   * sent, and hashed first, as by {@link #push(String, List, Options)}.
   */
  public PushResult attach(String subject, List<Path> files, Options options) throws IOException {
    Deadline deadline = deadline(options);
    AttachRequest header =
        AttachRequest.newBuilder()
            .setHeader(
                AttachHeader.newBuilder()
                    .setSubject(target(subject, options))
                    .setArtifact(spec(files, options)))
            .build();
    return upload(
        withDeadline(async, deadline)::attach,
        deadline,
        header,
        chunk -> AttachRequest.newBuilder().setChunk(chunk).build(),
        r -> r.hasProgress() ? r.getProgress() : null,
        r -> r.hasResult() ? r.getResult() : null,
        files,
        options);
  }

  /**
   * Lists the referrers of a subject, like {@code satchel discover REF}. Each referrer's descriptor
   * carries digest, artifact_type and annotations. Uses artifactType (a filter), depth, plainHttp
   * and ociLayout.
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
                  .build());
    } catch (StatusRuntimeException e) {
      throw surfaced(e, deadline);
    }
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
   * Pulls an artifact's files into options.outputDir() (created if missing), like {@code satchel
   * pull -o DIR REF}. Before the first byte is written every title of the manifest is checked with
   * {@link Titles#checkAll}, and only files the manifest names are written (else
   * INVALID_ARGUMENT). Below the output directory no symbolic link is followed (FAILED_PRECONDITION,
   * see {@link OutputDir}). Each file is written to a partial file beside its final name, created
   * exclusively under a random name, and renamed once the daemon has verified its digest and this
   * client has checked the digest (sha256 or sha512) and size of the bytes it wrote against the
   * layer descriptor; a mismatch is DATA_LOSS and leaves no file. A link at the final name is
   * replaced, never written through.
   */
  public PullResult pull(String reference, Options options) throws IOException {
    return pull(PullRequest.newBuilder().setTarget(target(reference, options)).build(), options);
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

  private static ArtifactSpec spec(List<Path> files, Options options) throws IOException {
    ArtifactSpec.Builder spec =
        ArtifactSpec.newBuilder()
            .setArtifactType(options.artifactType())
            .putAllAnnotations(options.annotations())
            .addAllTags(options.tags());
    List<String> titles = titles(files, options);
    byte[] buf = null;
    for (int i = 0; i < files.size(); i++) {
      Path file = files.get(i);
      if (!Files.isRegularFile(file)) {
        throw new NoSuchFileException(file.toString(), null, "not a regular file");
      }
      FileSpec.Builder f =
          FileSpec.newBuilder()
              .setName(titles.get(i))
              .setMediaType(options.mediaType())
              .setSize(Files.size(file));
      if (options.hashes(f.getSize())) {
        if (buf == null) {
          buf = new byte[CHUNK_SIZE];
        }
        hash(file, f, buf);
      }
      spec.addFiles(f);
    }
    return spec.build();
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
    try (InputStream in = Files.newInputStream(file)) {
      int n;
      while ((n = in.read(buf)) > 0) {
        sha.update(buf, 0, n);
        size += n;
      }
    }
    spec.setDigest("sha256:" + HexFormat.of().formatHex(sha.digest())).setSize(size);
  }

  // ---- Push and Attach: a header, then every file's chunks, sent as flow control allows.

  private <Req, Resp> PushResult upload(
      Function<StreamObserver<Resp>, StreamObserver<Req>> start,
      Deadline deadline,
      Req header,
      Function<FileChunk, Req> wrapChunk,
      Function<Resp, Progress> progressOf,
      Function<Resp, PushResult> resultOf,
      List<Path> files,
      Options options)
      throws IOException {
    Upload<Req, Resp> call = new Upload<>(progressOf, resultOf, options);
    start.apply(call);
    try {
      call.send(header);
      byte[] buf = new byte[CHUNK_SIZE];
      for (int i = 0; i < files.size(); i++) {
        try (InputStream in = Files.newInputStream(files.get(i))) {
          int n;
          while ((n = in.readNBytes(buf, 0, buf.length)) > 0) {
            FileChunk chunk =
                FileChunk.newBuilder().setFileIndex(i).setData(ByteString.copyFrom(buf, 0, n)).build();
            call.send(wrapChunk.apply(chunk));
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

  private static final class Upload<Req, Resp> implements ClientResponseObserver<Req, Resp> {
    private final Function<Resp, Progress> progressOf;
    private final Function<Resp, PushResult> resultOf;
    private final Options options;
    private final Object lock = new Object();
    private ClientCallStreamObserver<Req> requests;
    private PushResult result;
    private Throwable error;
    private RuntimeException callbackError;
    private boolean completed;

    Upload(Function<Resp, Progress> progressOf, Function<Resp, PushResult> resultOf, Options options) {
      this.progressOf = progressOf;
      this.resultOf = resultOf;
      this.options = options;
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<Req> requests) {
      this.requests = requests;
      requests.setOnReadyHandler(
          () -> {
            synchronized (lock) {
              lock.notifyAll();
            }
          });
    }

    @Override
    public void onNext(Resp response) {
      Progress progress = progressOf.apply(response);
      if (progress != null) {
        try {
          options.progress().accept(progress);
        } catch (RuntimeException e) {
          // Stop the upload now, and hand the caller its callback's own exception.
          synchronized (lock) {
            if (callbackError == null) {
              callbackError = e;
            }
            lock.notifyAll();
          }
          requests.cancel("progress callback failed", e);
          return;
        }
      }
      PushResult r = resultOf.apply(response);
      if (r != null) {
        synchronized (lock) {
          result = r;
        }
      }
    }

    @Override
    public void onError(Throwable t) {
      synchronized (lock) {
        error = t;
        lock.notifyAll();
      }
    }

    @Override
    public void onCompleted() {
      synchronized (lock) {
        completed = true;
        lock.notifyAll();
      }
    }

    /** Sends a message once the transport can take it; fails fast if the call has ended. */
    void send(Req message) throws InterruptedException {
      synchronized (lock) {
        while (!requests.isReady() && error == null && callbackError == null && !completed) {
          lock.wait();
        }
        if (callbackError != null) {
          throw callbackError;
        }
        if (error != null) {
          throw rethrown(error);
        }
        if (completed) {
          throw Status.INTERNAL
              .withDescription("the daemon ended the call before all files were sent")
              .asRuntimeException();
        }
      }
      requests.onNext(message);
    }

    PushResult awaitResult() throws InterruptedException {
      synchronized (lock) {
        while (error == null && callbackError == null && !completed) {
          lock.wait();
        }
        if (callbackError != null) {
          throw callbackError;
        }
        if (error != null) {
          throw rethrown(error);
        }
        if (result == null) {
          throw Status.INTERNAL
              .withDescription("the daemon ended the call without a result")
              .asRuntimeException();
        }
        return result;
      }
    }
  }

  /** The call's status, rethrown on the caller's thread (so its stack trace points there). */
  private static StatusRuntimeException rethrown(Throwable t) {
    return new StatusRuntimeException(
        Status.fromThrowable(t).withCause(t), Status.trailersFromThrowable(t));
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
      throw surfaced(rethrown(e), deadline);
    } finally {
      context.cancel(null);
    }
  }
}
